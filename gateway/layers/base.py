"""The contract every channel layer implements, and the name rules they share.

A channel layer moves messages (plain dicts) between named channels, and fans
messages out to named groups of channels. The rules here are Channels' rules, so
names that are valid in a Channels project stay valid after porting:

* a channel or group name is ASCII letters, digits, ``-``, ``_`` and ``.``, and is
  shorter than :attr:`BaseChannelLayer.MAX_NAME_LENGTH` characters;
* a channel name may carry one ``!``: the part before it names a *process-local*
  channel family that only this process receives from (``new_channel()`` names);
  the part after identifies one channel of that family.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from re import Pattern
from typing import ClassVar, TypeGuard

from gateway.layers.stats import LayerStats
from gateway.types import Message

#: Values a shallow copy need not copy: deep-copying them returns them unchanged.
_ATOMS = frozenset({str, bytes, int, float, bool, type(None)})


def message_copier(message: Message) -> Callable[[Message], Message]:
    """How to deep-copy ``message``, once for each of its receivers, so no member of a
    group sees another's changes. A flat dict of atoms (a typical group message:
    ``type`` and a text) is copied as a dict, ten times faster than ``deepcopy``."""
    atoms = _ATOMS
    for value in message.values():
        if type(value) not in atoms:
            return copy.deepcopy
    return dict


def copy_message(message: Message) -> Message:
    """A deep copy of ``message`` (see :func:`message_copier`)."""
    return message_copier(message)(message)


class BaseChannelLayer:
    """Base class for channel layers: name validation and capacity lookup.

    Subclasses implement the async API: :meth:`send`, :meth:`receive`,
    :meth:`new_channel`, and, when they list ``"groups"`` and ``"flush"`` in
    :attr:`extensions`, :meth:`group_add`, :meth:`group_discard`,
    :meth:`group_send` and :meth:`flush`; :meth:`close` releases resources.
    """

    MAX_NAME_LENGTH: ClassVar[int] = 100
    extensions: ClassVar[list[str]] = []
    #: What the layer has done (every layer sets this in its constructor).
    stats: LayerStats

    channel_name_regex: ClassVar[Pattern[str]] = re.compile(r"^[a-zA-Z\d\-_.]+(![\d\w\-_.]*)?$")
    group_name_regex: ClassVar[Pattern[str]] = re.compile(r"^[a-zA-Z\d\-_.]+$")
    #: Channels' wording for an invalid name, formatted with "Channel" or "Group";
    #: the errors raised start with it and then name the value refused.
    invalid_name_error: ClassVar[str] = (
        "{} name must be a valid unicode string "
        f"with length < {MAX_NAME_LENGTH} "
        "containing only ASCII alphanumerics, hyphens, underscores, or periods."
    )

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
    ) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    # Capacity -----------------------------------------------------------------

    @staticmethod
    def compile_capacities(
        channel_capacity: Mapping[str | Pattern[str], int],
    ) -> list[tuple[Pattern[str], int]]:
        """Turn ``{pattern: capacity}`` into ``[(compiled regex, capacity)]``.

        A string pattern is a glob (``"http.response!*"``); a compiled regex is
        used as it is. The first matching pattern wins.
        """
        compiled: list[tuple[Pattern[str], int]] = []
        for pattern, value in channel_capacity.items():
            if isinstance(pattern, re.Pattern):
                compiled.append((pattern, value))
            else:
                compiled.append((re.compile(fnmatch.translate(pattern)), value))
        return compiled

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching pattern's, else the default."""
        for pattern, value in self.channel_capacity:
            if pattern.match(channel):
                return value
        return self.capacity

    # Names --------------------------------------------------------------------

    def match_type_and_length(self, name: object) -> TypeGuard[str]:
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Raise ``TypeError`` unless ``name`` is a valid channel name.

        With ``receive=True`` a process-local name must end at its ``!``
        (receivers read the whole local family), as in Channels.
        """
        if not self.match_type_and_length(name) or not self.channel_name_regex.match(name):
            raise TypeError(self._name_error("Channel", name))
        if "!" in name and not name.endswith("!") and receive:
            raise TypeError(f"Specific channel names in receive() must end at the ! (got {name!r})")
        return True

    def require_valid_group_name(self, name: object) -> bool:
        """Raise ``TypeError`` unless ``name`` is a valid group name."""
        if not self.match_type_and_length(name) or not self.group_name_regex.match(name):
            raise TypeError(self._name_error("Group", name))
        return True

    def _name_error(self, kind: str, name: object) -> str:
        return f"{self.invalid_name_error.format(kind)} Got {name!r:.200}."

    def valid_channel_names(self, names: Iterable[object], receive: bool = False) -> bool:
        names = list(names)
        if not names:
            raise TypeError("At least one channel name is required")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    def valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Deprecated alias of :meth:`require_valid_channel_name`, kept for porting."""
        warnings.warn(
            "valid_channel_name is deprecated; use require_valid_channel_name",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive=receive)

    def valid_group_name(self, name: object) -> bool:
        """Deprecated alias of :meth:`require_valid_group_name`, kept for porting."""
        warnings.warn(
            "valid_group_name is deprecated; use require_valid_group_name",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    @staticmethod
    def non_local_name(name: str) -> str:
        """The process-local family of ``name`` (``"a!b"`` -> ``"a!"``), else ``name``."""
        if "!" in name:
            return name[: name.find("!") + 1]
        return name

    # The async API --------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        raise NotImplementedError("send() is not implemented by this layer")

    async def receive(self, channel: str) -> Message:
        raise NotImplementedError("receive() is not implemented by this layer")

    async def new_channel(self, prefix: str = "specific") -> str:
        raise NotImplementedError("new_channel() is not implemented by this layer")

    async def flush(self) -> None:
        raise NotImplementedError("flush() is not implemented by this layer")

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_add() is not implemented by this layer")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_discard() is not implemented by this layer")

    async def group_send(self, group: str, message: Message) -> None:
        raise NotImplementedError("group_send() is not implemented by this layer")

    async def close(self) -> None:
        """Release connections and background tasks. Safe to call twice."""
