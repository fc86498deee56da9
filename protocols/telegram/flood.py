"""Pacing of Bot API calls so a bot stays within Telegram's flood limits, without I/O.

Telegram asks bots to send at most about 30 messages per second overall, about one
per second to one chat, and 20 per minute to one group
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this), and
answers ``429`` with ``parameters.retry_after`` when a bot goes faster
(https://core.telegram.org/bots/api#responseparameters). :class:`FloodControl`
reserves a time slot for each message-sending call, in sliding windows, and remembers
``retry_after`` pauses; the caller sleeps for the returned delay. Time is injected.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]


@dataclass(frozen=True)
class Window:
    """At most ``limit`` calls in any ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise ValueError(f"a flood window needs limit >= 1 and period > 0, not {self}")


@dataclass(frozen=True)
class FloodLimits:
    """The windows applied to message-sending calls (spec §5)."""

    overall: Window | None = Window(30, 1.0)
    per_chat: Window | None = Window(3, 3.0)
    per_group: Window | None = Window(20, 60.0)

    @classmethod
    def off(cls) -> FloodLimits:
        return cls(None, None, None)


def is_paced(method: str) -> bool:
    """Whether ``method`` sends a message, and so counts against the limits."""
    if method == "sendChatAction":
        return False
    return method.startswith(("send", "forward", "copy"))


def is_group(chat_id: Any) -> bool:
    """Group, supergroup and channel ids are negative in the Bot API."""
    return isinstance(chat_id, int) and chat_id < 0


class _SlidingWindow:
    """Reserved call times for one key, sorted (reservations may lie in the future)."""

    __slots__ = ("stamps", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.stamps: list[float] = []

    def forget_before(self, now: float) -> None:
        """Drop times no window starting at or after ``now`` can contain."""
        cut = bisect.bisect_right(self.stamps, now - self.window.period)
        if cut:
            del self.stamps[:cut]

    def earliest(self, at: float) -> float:
        """The earliest time >= ``at`` with room for one more call in its window."""
        stamps, limit, period = self.stamps, self.window.limit, self.window.period
        while True:
            first = bisect.bisect_right(stamps, at - period)
            last = bisect.bisect_right(stamps, at)
            if last - first < limit:
                return at
            at = stamps[last - limit] + period

    def record(self, at: float) -> None:
        bisect.insort(self.stamps, at)

    def idle(self, now: float) -> bool:
        return not self.stamps or self.stamps[-1] <= now - self.window.period


class FloodControl:
    """Reserve send slots within :class:`FloodLimits`; remember ``retry_after`` pauses.

    >>> control = FloodControl(FloodLimits(per_chat=Window(1, 1.0)), clock=lambda: 0.0)
    >>> control.reserve("sendMessage", 42), control.reserve("sendMessage", 42)
    (0.0, 1.0)
    >>> control.pause(42, 5.0); control.paused_for(42)
    5.0
    """

    #: Per-chat state is pruned every this many reservations, so it stays bounded
    #: by the chats active within one window.
    PRUNE_EVERY = 1024

    def __init__(self, limits: FloodLimits | None = None, clock: Clock = time.monotonic) -> None:
        self.limits = limits or FloodLimits()
        self.clock = clock
        self._overall = _SlidingWindow(self.limits.overall) if self.limits.overall else None
        self._chats: dict[Any, _SlidingWindow] = {}
        self._paused_until: dict[Any, float] = {}
        self._reservations = 0

    def _chat_window(self, chat_id: Any) -> _SlidingWindow | None:
        window = self.limits.per_group if is_group(chat_id) else self.limits.per_chat
        if window is None or chat_id is None:
            return None
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _SlidingWindow(window)
        return state

    def paused_for(self, chat_id: Any) -> float:
        """Seconds left of a ``retry_after`` pause covering ``chat_id`` (0 if none)."""
        now = self.clock()
        until = max(self._paused_until.get(chat_id, now), self._paused_until.get(None, now))
        return max(until - now, 0.0)

    def reserve(self, method: str, chat_id: Any) -> float:
        """Reserve a slot for a call; return how many seconds to wait before making it.

        Callers first wait out :meth:`paused_for`, then reserve.
        """
        now = self.clock()
        if not is_paced(method):
            return 0.0
        windows = [w for w in (self._overall, self._chat_window(chat_id)) if w is not None]
        at = now
        # Each window can only push the time later; repeat until all of them agree.
        while True:
            later = max((w.earliest(at) for w in windows), default=at)
            if later == at:
                break
            at = later
        for w in windows:
            w.record(at)
        self._reservations += 1
        if self._reservations % self.PRUNE_EVERY == 0:
            self._prune(now)
        return at - now

    def pause(self, chat_id: Any, retry_after: float) -> None:
        """Honour a 429: no call to ``chat_id`` (None: any chat) for ``retry_after`` s."""
        until = self.clock() + max(retry_after, 0.0)
        if until > self._paused_until.get(chat_id, 0.0):
            self._paused_until[chat_id] = until

    def _prune(self, now: float) -> None:
        if self._overall is not None:
            self._overall.forget_before(now)
        for window in self._chats.values():
            window.forget_before(now)
        for chat_id in [c for c, w in self._chats.items() if w.idle(now)]:
            del self._chats[chat_id]
        for chat_id in [c for c, t in self._paused_until.items() if t <= now]:
            del self._paused_until[chat_id]

    def __len__(self) -> int:
        """How many chats currently have pacing state."""
        return len(self._chats)
