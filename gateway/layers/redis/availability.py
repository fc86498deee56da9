"""Whether a Redis host can be reached, and what happens while it cannot.

One :class:`Availability` per shard and event loop. Every path that finds the host
unreachable reports it (:meth:`Availability.lost`): the pipelined connection when
its link breaks, blocking receives when their pop fails, sends when their command
fails. The first report opens an *outage*: one warning is logged and one probe task
pings the host with backoff until it answers. Then the layer's recovery hook runs
(it re-adds the group memberships this process made, which a restarted Redis has
forgotten), waiting senders are released, and one line says how long the outage
lasted and how many messages could not be sent meanwhile. So an outage costs two
log lines, not one per message or per retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.backoff import Backoff

from .errors import UNREACHABLE

logger = logging.getLogger("gateway.layers.redis")


def report_receive_failure(what: str, error: Exception, backoff: Backoff) -> None:
    """Log a receive loop's failure that is not an outage, loudly, before a retry.

    Every channel the loop serves waits on it (an ACL refusing the pop, a server
    in a state the layer does not expect), so it must not end silently: the first
    failure of a run is logged with its traceback, later ones of the run as a line
    each (they are a backoff step apart, at most one every 2 s).
    """
    if backoff.failures == 0:
        logger.error("Receiving %s failed; retrying until it works", what, exc_info=error)
    else:
        logger.error("Receiving %s failed again: %s", what, error)


class Availability:
    """The reachability of one Redis host (a shard) in one event loop.

    ``ping`` must raise (an :data:`~gateway.layers.redis.errors.UNREACHABLE` error)
    while the host is down; ``on_recovered`` runs once the host answers again,
    before waiting senders go on, and is retried (after more pings) if it fails.
    """

    def __init__(
        self,
        name: str,
        ping: Callable[[], Awaitable[Any]],
        on_recovered: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._ping = ping
        self._on_recovered = on_recovered
        self._up = asyncio.Event()
        self._up.set()
        self._probe: asyncio.Task[None] | None = None
        self._started = 0.0
        #: Messages given up during the current outage (sends that raised).
        self._lost = 0

    @property
    def down(self) -> bool:
        return not self._up.is_set()

    def lost(self, error: BaseException) -> None:
        """The host could not be reached: start an outage unless one is running."""
        if self.down:
            return
        loop = asyncio.get_running_loop()
        self._up.clear()
        self._started = loop.time()
        self._lost = 0
        logger.warning(
            "Redis at %s is unreachable (%s); waiting for it to come back", self.name, error
        )
        self._probe = asyncio.ensure_future(self._wait_until_back())

    def gave_up(self) -> None:
        """Count a message that could not be sent during this outage."""
        self._lost += 1
        if self._lost == 1:
            logger.warning(
                "Redis at %s is still unreachable: messages are failing with "
                "ChannelLayerUnavailable; their count is logged when it is back",
                self.name,
            )

    async def wait_up(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the current outage to end."""
        if not self.down:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    async def pause_after_failure(self, backoff: Backoff) -> None:
        """Pause a receive loop after a failure: until Redis is back, or a backoff step.

        During an outage the loop wakes as soon as the probe sees Redis answer, not
        up to a backoff step later; other failures (a cluster slot moving) back off.
        """
        if self.down:
            backoff.failures += 1
            await self.wait_up(backoff.cap)
        else:
            await backoff.wait()

    async def _wait_until_back(self) -> None:
        # Pings are cheap: a short cap keeps senders from waiting long after recovery.
        backoff = Backoff(cap=0.5)
        while True:
            await backoff.wait()
            try:
                await self._ping()
                await self._on_recovered()
            except UNREACHABLE:
                continue
            except Exception:
                logger.exception("Recovering from the outage of Redis at %s failed", self.name)
            break
        seconds = asyncio.get_running_loop().time() - self._started
        self._up.set()
        if self._lost:
            logger.warning(
                "Redis at %s is back after %.1f s; %d messages could not be sent meanwhile",
                self.name,
                seconds,
                self._lost,
            )
        else:
            logger.info("Redis at %s is back after %.1f s", self.name, seconds)

    async def aclose(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
