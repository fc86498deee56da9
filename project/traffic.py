"""The traffic log's feed: what crosses the gateway, in batches on the group ``iot.traffic``.

The contract, shared by every producer (``project.iot`` for MQTT, :class:`TrafficTap`
here for WebSocket and Telegram) and read by the dashboard's traffic page::

    {"type": "iot.traffic", "dropped": 0, "entries": [
        {"at": "2025-01-01T12:00:00.250+00:00", "protocol": "mqtt",
         "direction": "in", "device": "boiler-1", "topic": "devices/boiler-1/telemetry",
         "summary": "{\\"temp\\": 21.5}"}]}

``direction`` is ``in`` (towards the gateway) or ``out``; ``device`` is None where no
device is involved; ``dropped`` counts entries lost before this batch (overflow, or a
send that failed), so a reader can say so instead of pretending it saw everything.

:class:`TrafficEmitter` batches: :meth:`~TrafficEmitter.emit` appends to a buffer of
at most ``limit`` entries (past that the oldest are dropped and counted) and one
``group_send`` every ``interval`` seconds carries the batch. At most one send is in
flight per event loop; what arrives meanwhile waits for the next batch, still bounded.
``emit`` never blocks and never raises for a layer outage (the outage is logged in
one line, then counted, and its entries are counted as dropped). Use the module's
:data:`traffic`, from code running on the event loop (async consumers, middleware)::

    from project.traffic import traffic

    traffic.emit("mqtt", "in", topic, summary, device=device_id)
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from django.core.exceptions import ImproperlyConfigured

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import ChannelLayerUnavailable
from gateway.failure_log import FailureLog
from gateway.layers import get_channel_layer
from gateway.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("project.traffic")
failures = FailureLog(logger, level=logging.WARNING)

TRAFFIC_GROUP = "iot.traffic"
TRAFFIC_TYPE = "iot.traffic"
#: Longest ``summary`` and ``topic`` kept, in characters.
TEXT_LIMIT = 200

Direction = Literal["in", "out"]


class Entry(TypedDict):
    at: str
    protocol: str
    direction: Direction
    device: str | None
    topic: str
    summary: str


def entry(
    protocol: str, direction: Direction, topic: str, summary: str, device: str | None = None
) -> Entry:
    """One traffic entry, stamped now (UTC, milliseconds), long texts cut."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "protocol": protocol,
        "direction": direction,
        "device": device,
        "topic": topic[:TEXT_LIMIT],
        "summary": summary[:TEXT_LIMIT],
    }


class _Batch:
    """What one event loop has buffered, and its timer or send in flight."""

    def __init__(self, limit: int) -> None:
        self.entries: deque[Entry] = deque(maxlen=limit)
        self.dropped = 0
        self.timer: asyncio.TimerHandle | None = None
        self.sending: asyncio.Task[None] | None = None


class TrafficEmitter:
    """Batches entries to ``group`` (see the module docstring for the bounds)."""

    def __init__(
        self,
        group: str = TRAFFIC_GROUP,
        *,
        interval: float = 0.25,
        limit: int = 500,
        alias: str = DEFAULT_CHANNEL_LAYER,
    ) -> None:
        if interval <= 0 or limit < 1:
            raise ValueError("interval must be positive and limit at least 1")
        self.group = group
        self.interval = interval
        self.limit = limit
        self.alias = alias
        # One batch per event loop: tests run many loops in one process.
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = (
            weakref.WeakKeyDictionary()
        )

    def emit(
        self,
        protocol: str,
        direction: Direction,
        topic: str,
        summary: str,
        device: str | None = None,
    ) -> None:
        """Queue one entry for the next batch (on the running event loop; never blocks)."""
        self.add(entry(protocol, direction, topic, summary, device))

    def add(self, item: Entry) -> None:
        """Queue an entry built elsewhere (e.g. with :func:`entry`)."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            if get_channel_layer(self.alias) is None:
                raise ImproperlyConfigured(
                    f"the traffic log needs a channel layer; CHANNEL_LAYERS has no {self.alias!r}"
                )
            batch = self._batches[loop] = _Batch(self.limit)
        if len(batch.entries) == self.limit:
            batch.dropped += 1
        batch.entries.append(item)
        if batch.timer is None and batch.sending is None:
            batch.timer = loop.call_later(self.interval, self._flush, loop, batch)

    async def drain(self) -> None:
        """Send what this loop has buffered now, and wait until it is sent."""
        batch = self._batches.get(asyncio.get_running_loop())
        while batch is not None and (batch.entries or batch.dropped or batch.sending):
            if batch.sending is None:
                self._flush(asyncio.get_running_loop(), batch)
            assert batch.sending is not None  # set by _flush
            await asyncio.shield(batch.sending)

    def _flush(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        entries = list(batch.entries)
        batch.entries.clear()
        dropped, batch.dropped = batch.dropped, 0
        batch.sending = loop.create_task(self._send(loop, batch, entries, dropped))

    async def _send(
        self, loop: asyncio.AbstractEventLoop, batch: _Batch, entries: list[Entry], dropped: int
    ) -> None:
        message = {"type": TRAFFIC_TYPE, "entries": entries, "dropped": dropped}
        try:
            layer = get_channel_layer(self.alias)
            assert layer is not None  # checked when the batch was created
            await layer.group_send(self.group, message)
        except ChannelLayerUnavailable as exc:
            batch.dropped += len(entries) + dropped
            failures.repeated("traffic unavailable", f"traffic entries not sent: {exc}")
        except Exception as exc:
            batch.dropped += len(entries) + dropped
            failures.failed(f"traffic entries not sent to {self.group!r}", exc)
        finally:
            batch.sending = None
            if batch.entries or batch.dropped:
                batch.timer = loop.call_later(self.interval, self._flush, loop, batch)


#: The process's emitter for the group ``iot.traffic``.
traffic = TrafficEmitter()


class TrafficTap:
    """ASGI middleware reporting the traffic of WebSocket and Telegram scopes.

    WebSocket: each connect, close (a refusal included) and disconnect, never the
    frames (the traffic page's own socket would feed itself). Telegram: every
    event in and every message out, with its text. Other scopes pass untouched.
    """

    def __init__(self, inner: ASGIApp, emitter: TrafficEmitter = traffic) -> None:
        self.inner = inner
        self.emitter = emitter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            topic = str(scope.get("path", ""))
        elif kind == "telegram":
            topic = _chat(scope)
        else:
            await self.inner(scope, receive, send)
            return

        async def tapped_receive() -> Message:
            message = await receive()
            self._note(kind, "in", topic, scope, message)
            return message

        async def tapped_send(message: Message) -> None:
            self._note(kind, "out", topic, scope, message)
            await send(message)

        await self.inner(scope, tapped_receive, tapped_send)

    def _note(
        self, kind: str, direction: Direction, topic: str, scope: Scope, message: Message
    ) -> None:
        describe = _websocket_summary if kind == "websocket" else _telegram_summary
        summary = describe(scope, message)
        if summary is not None:
            self.emitter.emit(kind, direction, topic, summary)


def _websocket_summary(scope: Scope, message: Message) -> str | None:
    kind = message["type"]
    if kind == "websocket.connect":
        user = scope.get("user")
        name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
        return f"connect ({name})"
    if kind == "websocket.close":
        reason = message.get("reason") or ""
        return f"close {message.get('code', 1000)} {reason}".strip()
    if kind == "websocket.disconnect":
        return f"disconnect {message.get('code', 1005)}"
    return None


def _telegram_summary(scope: Scope, message: Message) -> str | None:
    kind = str(message["type"])
    if kind in ("telegram.disconnect", "telegram.result"):
        return None
    if kind == "telegram.call":
        return f"call {message.get('method')}"
    text = message.get("text")
    label = kind.removeprefix("telegram.")
    return f"{label}: {text}" if isinstance(text, str) and text else label


def _chat(scope: Scope) -> str:
    chat: dict[str, Any] = scope.get("chat") or {}
    conversation = scope.get("conversation") or []
    ident = chat.get("id", conversation[2] if len(conversation) > 2 else "?")
    name = chat.get("title") or chat.get("username")
    return f"chat {ident}" + (f" ({name})" if name else "")
