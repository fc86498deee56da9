"""Bounds on credential checks, so wrong credentials cannot starve right ones: pure.

- :func:`source_of`: the *source* a client address counts as: the address itself
  for IPv4, its /64 network for IPv6 (one subscriber's allocation), so an attacker
  cannot dodge the limits by walking through its own addresses.
- :class:`SourceLimits`: each source may fail ``limit`` logins per ``period`` (a
  token bucket refilling continuously); past that its logins are refused without
  being checked until the bucket refills. It also gives each source a
  :class:`Standing`: *suspect* while it has failed recently, *trusted* for
  ``trust_period`` after a login succeeded from it, *unknown* otherwise. Sources are
  forgotten least recently used first beyond ``max_sources``, so both tables are
  bounded.
- :class:`FairQueue`: slow checks waiting for a worker, taken one source at a time
  in turn (round robin), at most ``per_source`` waiting per source and ``total`` in
  all; past either bound :meth:`FairQueue.push` refuses. A flood from one address
  then delays another address's check by at most one check per busy source.

Time is injected (``clock``, monotonic seconds); nothing here blocks or does I/O.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


def source_of(address: str) -> str:
    """The source ``address`` counts as: IPv4 as is, IPv6 by its /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP address (a Unix socket, a test double): as is
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Standing(IntEnum):
    """How far a source is trusted; lower values are served first."""

    TRUSTED = 0  # a login succeeded from it lately, and none failed since
    UNKNOWN = 1
    SUSPECT = 2  # a login failed from it lately


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SourceLimits:
    """Failed logins allowed per source (``limit`` per ``period`` s), and its standing."""

    def __init__(
        self,
        limit: int = 10,
        period: float = 60.0,
        *,
        trust_period: float = 3600.0,
        clock: Clock = time.monotonic,
        max_sources: int = 100_000,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a failure limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.trust_period = trust_period
        self.clock = clock
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._succeeded: OrderedDict[str, float] = OrderedDict()

    def _refilled(self, source: str) -> _Bucket | None:
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        now = self.clock()
        rate = self.limit / self.period
        bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= self.limit:
            del self._buckets[source]  # a full bucket is the same as no bucket
            return None
        return bucket

    def allowed(self, source: str) -> bool:
        """Whether ``source`` may try a login now."""
        bucket = self._refilled(source)
        return bucket is None or bucket.tokens >= 1

    def standing(self, source: str) -> Standing:
        """Suspect while its failure budget is not whole again; trusted after a success."""
        if self._refilled(source) is not None:
            return Standing.SUSPECT
        succeeded = self._succeeded.get(source)
        if succeeded is not None and self.clock() - succeeded < self.trust_period:
            return Standing.TRUSTED
        return Standing.UNKNOWN

    def failed(self, source: str) -> None:
        """``source`` failed a login: spend one of its failures."""
        bucket = self._refilled(source) or _Bucket(float(self.limit), self.clock())
        bucket.tokens = max(0.0, bucket.tokens - 1)
        remember_newest(self._buckets, source, bucket, self.max_sources)

    def succeeded(self, source: str) -> None:
        """A login succeeded from ``source``."""
        remember_newest(self._succeeded, source, self.clock(), self.max_sources)


def remember_newest(table: OrderedDict[K, T], key: K, value: T, bound: int) -> None:
    """Set ``table[key]`` as the most recent entry; forget the oldest past ``bound``."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > bound:
        table.popitem(last=False)


class FairQueue(Generic[T]):
    """Items waiting per source, taken in turns; bounded per source and in total."""

    def __init__(self, per_source: int, total: int) -> None:
        if per_source < 1 or total < 1:
            raise ValueError("a fair queue needs per_source >= 1 and total >= 1")
        self.per_source = per_source
        self.total = total
        self._waiting: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, source: Hashable, item: T) -> bool:
        """Queue ``item`` for ``source``; False (not queued) past a bound."""
        queue = self._waiting.get(source)
        if self._size >= self.total or (queue is not None and len(queue) >= self.per_source):
            return False
        if queue is None:
            queue = self._waiting[source] = deque()
        queue.append(item)
        self._size += 1
        return True

    def pop(self) -> T | None:
        """The oldest item of the source whose turn it is, or None when empty."""
        if not self._waiting:
            return None
        source, queue = next(iter(self._waiting.items()))
        item = queue.popleft()
        self._size -= 1
        del self._waiting[source]
        if queue:
            self._waiting[source] = queue  # back of the line
        return item

    def remove(self, source: Hashable, item: T) -> None:
        """Forget a waiting ``item`` (its caller gave up); nothing if it is not waiting."""
        queue = self._waiting.get(source)
        if queue is None or item not in queue:
            return
        queue.remove(item)
        self._size -= 1
        if not queue:
            del self._waiting[source]
