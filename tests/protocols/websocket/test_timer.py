"""protocols.websocket.timer: one timeout per connection, one lazily re-armed timer."""

from __future__ import annotations

import asyncio

from protocols.websocket.timer import SLACK, LazyTimer


class Expiries:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.times: list[float] = []
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.times.append(self.loop.time())
        self.event.set()

    async def first(self) -> float:
        async with asyncio.timeout(2):
            await self.event.wait()
        return self.times[0]


async def test_it_expires_once_at_the_deadline() -> None:
    expiries = Expiries()
    timer = LazyTimer(expiries.loop, expiries)
    deadline = expiries.loop.time() + 0.02
    timer.set(deadline)
    assert await expiries.first() >= deadline - SLACK
    assert len(expiries.times) == 1


async def test_a_later_deadline_keeps_the_timer_and_is_the_one_that_counts() -> None:
    expiries = Expiries()
    timer = LazyTimer(expiries.loop, expiries)
    now = expiries.loop.time()
    timer.set(now + 0.01)
    handle = timer._timer
    timer.set(now + 0.06)  # a request came: wait again, from now
    assert timer._timer is handle  # no new timer for a later deadline
    assert await expiries.first() >= now + 0.06 - SLACK
    assert len(expiries.times) == 1


async def test_an_earlier_deadline_is_not_missed() -> None:
    expiries = Expiries()
    timer = LazyTimer(expiries.loop, expiries)
    now = expiries.loop.time()
    timer.set(now + 60)
    timer.set(now + 0.01)
    assert await expiries.first() < now + 60


async def test_a_cancelled_timer_never_expires() -> None:
    expiries = Expiries()
    timer = LazyTimer(expiries.loop, expiries)
    timer.set(expiries.loop.time() + 0.01)
    timer.cancel()
    timer.cancel()  # twice is fine
    await asyncio.sleep(0.05)  # past the deadline: nothing may happen
    assert expiries.times == []
