"""permessage-deflate (RFC 7692) as this server runs it, and frames encoded once for many sockets.

Every browser offers permessage-deflate. Accepted with websockets' defaults (context
takeover both ways, 32 KiB windows), each socket keeps a compressor and a
decompressor alive between messages: about 100 KiB of RSS per idle socket, ten
times the rest of it. This server instead answers (RFC 7692 7.1):

* ``server_no_context_takeover`` and ``client_no_context_takeover`` (7.1.1): each
  message is compressed on its own, so nothing is kept between messages on either
  side; the compressor and decompressor live for one message.
* ``server_max_window_bits=12`` and ``memLevel`` 5 (7.1.2): without context
  takeover a window only has to span one message; a 4 KiB window compresses
  dashboard batches as well as 32 KiB, and the smaller tables make creating a
  compressor per message cheaper.
* messages shorter than ``min_size`` bytes go uncompressed (RSV1 clear, which
  RFC 7692 6 allows per message): without context a 100-byte JSON message shrinks
  by ~12%, not worth a compressor.

bench/web/deflate.py measures each choice (bandwidth, CPU, memory) and docs/web.md
records them. Because a message's compressed form no longer depends on what the
socket sent before, the same message compresses to the same bytes on every socket
with the same settings: :func:`encoded_frame` encodes a broadcast once.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

#: The server's LZ77 window (RFC 7692 7.1.2.1) and zlib's memLevel for compressing.
WINDOW_BITS = 12
MEM_LEVEL = 5


class SizedDeflate(PerMessageDeflate):
    """websockets' permessage-deflate that leaves messages under ``min_size`` bytes
    uncompressed, and says what decides its output (:attr:`signature`)."""

    def __init__(self, negotiated: PerMessageDeflate, min_size: int) -> None:
        super().__init__(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        self.min_size = min_size
        #: Equal for two sockets whose encoding of any message is byte for byte the
        #: same; None when it depends on earlier messages (context takeover).
        self.signature: tuple[object, ...] | None = (
            ("deflate", self.local_max_window_bits, min_size)
            if self.local_no_context_takeover
            else None
        )

    def encode(self, frame: Frame) -> Frame:
        # Only whole data messages: a fragmented message is compressed as one stream.
        if (
            frame.fin
            and len(frame.data) < self.min_size
            and (frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY)
        ):
            return frame
        return super().encode(frame)


class DeflateFactory(ServerPerMessageDeflateFactory):
    """Accepts permessage-deflate offers with the settings in the module docstring."""

    def __init__(self, min_size: int) -> None:
        super().__init__(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=WINDOW_BITS,
            compress_settings={"memLevel": MEM_LEVEL},
        )
        self.min_size = min_size

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, SizedDeflate(negotiated, self.min_size)


def signature(extensions: Sequence[Extension]) -> tuple[object, ...] | None:
    """What decides how a socket with these extensions encodes a message; None if
    its encoding depends on its history (then its frames cannot be shared)."""
    if not extensions:
        return ()
    if len(extensions) == 1 and isinstance(extensions[0], SizedDeflate):
        return extensions[0].signature
    return None


class _LastFrame:
    """The last frame encoded, so a broadcast reaching many sockets is encoded once."""

    __slots__ = ("data", "frame", "key", "text")

    def __init__(self) -> None:
        self.text = False
        self.data: str | bytes | None = None
        self.key: tuple[object, ...] | None = None
        self.frame = b""


_last = _LastFrame()


def encoded_frame(
    text: bool, data: str | bytes, key: tuple[object, ...], extensions: Sequence[Extension]
) -> bytes:
    """The server-to-client frame (unmasked, RFC 6455 5.1) carrying ``data`` on a socket
    whose :func:`signature` is ``key``, from a one-entry cache.

    A group message handled by many consumers in a row is the same ``str`` (or an
    equal one, from a networked layer): its UTF-8 encoding, compression and framing
    happen once, then every socket writes the same bytes, as ``websockets.broadcast``
    does for uncompressed sockets.
    """
    last = _last
    if last.key == key and last.text is text and last.data == data:
        return last.frame
    payload = data.encode() if isinstance(data, str) else data
    frame = Frame(Opcode.TEXT if text else Opcode.BINARY, payload).serialize(
        mask=False, extensions=extensions
    )
    last.text, last.data, last.key, last.frame = text, data, key, frame
    return frame
