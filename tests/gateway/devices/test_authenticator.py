"""gateway.devices.authenticator: the slow lane and the authenticator that chooses the lane."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from gateway.devices.acl import DeviceACL
from gateway.devices.authenticator import DeviceAuthenticator, LaneFull, Refusal, SlowLane
from gateway.devices.credentials import generate_token, hash_secret
from gateway.devices.limits import SourceLimits, Standing
from tests.protocols.mqtt.fakes import FakeDevices

WAIT = 10.0


class Gate:
    """Blocking jobs for the slow lane, released from the test."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.order: list[str] = []

    def job(self, name: str) -> Callable[[], str]:
        def run() -> str:
            self.released.wait(WAIT)
            self.order.append(name)
            return name

        return run


async def test_the_slow_lane_serves_sources_in_turn_and_refuses_past_its_bound() -> None:
    lane = SlowLane(1, per_source=2, total=3)
    gate = Gate()
    try:
        running = asyncio.create_task(lane.run("flood", gate.job("f0")))
        await asyncio.sleep(0)  # let it take the worker
        waiting = [
            asyncio.create_task(lane.run(source, gate.job(name)))
            for source, name in [("flood", "f1"), ("flood", "f2"), ("device", "d1")]
        ]
        await asyncio.sleep(0)
        with pytest.raises(LaneFull):
            await lane.run("flood", gate.job("f3"))
        gate.released.set()
        async with asyncio.timeout(WAIT):
            assert await running == "f0"
            assert await asyncio.gather(*waiting) == ["f1", "f2", "d1"]
        assert gate.order == ["f0", "f1", "d1", "f2"]  # the device did not wait for f2
    finally:
        gate.released.set()
        lane.close()


async def test_sources_are_served_in_order_of_standing() -> None:
    lane = SlowLane(1)
    gate = Gate()
    try:
        running = asyncio.create_task(lane.run("flood", gate.job("f0")))
        await asyncio.sleep(0)
        jobs = [
            asyncio.create_task(lane.run(source, gate.job(source), standing=standing))
            for source, standing in [
                ("suspect", Standing.SUSPECT),
                ("fresh", Standing.UNKNOWN),
                ("usual", Standing.TRUSTED),
            ]
        ]
        await asyncio.sleep(0)
        gate.released.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(running, *jobs)
        assert gate.order == ["f0", "usual", "fresh", "suspect"]
    finally:
        gate.released.set()
        lane.close()


async def test_a_caller_giving_up_leaves_the_slow_lane_queue() -> None:
    lane = SlowLane(1, per_source=1, total=1)
    gate = Gate()
    try:
        running = asyncio.create_task(lane.run("a", gate.job("a")))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(lane.run("b", gate.job("b")))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        third = asyncio.create_task(lane.run("c", gate.job("c")))  # room again
        gate.released.set()
        async with asyncio.timeout(WAIT):
            assert list(await asyncio.gather(running, third)) == ["a", "c"]
    finally:
        gate.released.set()
        lane.close()


class CountingLane(SlowLane):
    def __init__(self) -> None:
        super().__init__(1)
        self.runs = 0

    async def run(  # type: ignore[override]
        self, source: str, func: Callable[[], bool], *, standing: Standing = Standing.UNKNOWN
    ) -> bool:
        self.runs += 1
        return await super().run(source, func, standing=standing)


async def test_tokens_skip_the_slow_lane_and_passwords_always_take_it() -> None:
    token = generate_token()
    devices = FakeDevices(tok=token, pw="s3cret")
    lane = CountingLane()
    authenticator = DeviceAuthenticator(lane, SourceLimits(100), devices)
    try:
        assert isinstance(await authenticator.authenticate("tok", token.encode(), "a"), DeviceACL)
        assert await authenticator.authenticate("nobody", token.encode(), "a") is (
            Refusal.BAD_CREDENTIALS
        )
        assert lane.runs == 0  # a token, known or not, costs one SHA-256
        assert isinstance(await authenticator.authenticate("pw", b"s3cret", "a"), DeviceACL)
        assert await authenticator.authenticate("nobody", b"s3cret", "a") is Refusal.BAD_CREDENTIALS
        assert await authenticator.authenticate("tok", b"s3cret", "a") is Refusal.BAD_CREDENTIALS
        assert lane.runs == 3  # a password costs one hash, whoever it is for
        assert await authenticator.authenticate("pw", b"\xff", "a") is Refusal.BAD_CREDENTIALS
        assert await authenticator.authenticate("pw", None, "a") is Refusal.BAD_CREDENTIALS
        assert lane.runs == 3  # nothing that could match: nothing to hash
    finally:
        authenticator.close()


async def test_a_password_is_hashed_again_only_when_it_is_not_the_one_verified() -> None:
    """A reconnect with the password just verified skips the hasher; a wrong password
    for the same device, or the old password after a change, costs a hash as before."""
    devices = FakeDevices(pw="s3cret")
    lane = CountingLane()
    authenticator = DeviceAuthenticator(lane, SourceLimits(100), devices)
    try:
        for _ in range(3):
            assert isinstance(await authenticator.authenticate("pw", b"s3cret", "a"), DeviceACL)
        assert lane.runs == 1
        assert await authenticator.authenticate("pw", b"guess", "b") is Refusal.BAD_CREDENTIALS
        assert lane.runs == 2  # refused after a hash, as for a device never seen
        devices.stored["pw"] = hash_secret("n3w")
        assert await authenticator.authenticate("pw", b"s3cret", "a") is Refusal.BAD_CREDENTIALS
        assert lane.runs == 3
        assert isinstance(await authenticator.authenticate("pw", b"n3w", "a"), DeviceACL)
        assert isinstance(await authenticator.authenticate("pw", b"n3w", "a"), DeviceACL)
        assert lane.runs == 4
        del devices.stored["pw"]  # deleted or deactivated
        assert await authenticator.authenticate("pw", b"n3w", "a") is Refusal.BAD_CREDENTIALS
        assert lane.runs == 5
    finally:
        authenticator.close()


async def test_a_source_past_its_failures_is_refused_unchecked() -> None:
    devices = FakeDevices(pw="s3cret")
    authenticator = DeviceAuthenticator(SlowLane(1), SourceLimits(2), devices)
    try:
        for _ in range(2):
            assert await authenticator.authenticate("pw", b"no", "10.0.0.9") is (
                Refusal.BAD_CREDENTIALS
            )
        lookups = devices.lookups
        assert await authenticator.authenticate("pw", b"s3cret", "10.0.0.9") is Refusal.THROTTLED
        assert devices.lookups == lookups
        assert isinstance(await authenticator.authenticate("pw", b"s3cret", "10.0.0.8"), DeviceACL)
    finally:
        authenticator.close()


async def test_a_full_slow_lane_refuses_at_once() -> None:
    gate = Gate()
    lane = SlowLane(1, per_source=1, total=1)
    authenticator = DeviceAuthenticator(lane, SourceLimits(100), FakeDevices(pw="s3cret"))
    try:
        busy = [asyncio.create_task(lane.run(f"flood{n}", gate.job(str(n)))) for n in range(2)]
        await asyncio.sleep(0)
        assert await authenticator.authenticate("pw", b"s3cret", "b") is Refusal.BUSY
        gate.released.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*busy)
    finally:
        gate.released.set()
        authenticator.close()
