"""gateway.devices: credentials (pure), limits (pure, fake clock) and the authenticator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from django.contrib.auth.hashers import make_password
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.acl import DeviceACL
from gateway.devices.authenticator import (
    DeviceAuthenticator,
    LaneFull,
    Refusal,
    SlowLane,
)
from gateway.devices.credentials import (
    VerifiedPasswords,
    check_slowly,
    check_token,
    generate_token,
    hash_secret,
    hash_token,
    is_fast_check,
    is_token,
    is_token_hash,
)
from gateway.devices.limits import FairQueue, SourceLimits, Standing, source_of
from tests.protocols.mqtt.fakes import FakeDevices

WAIT = 10.0


def test_tokens_are_256_random_bits_with_a_prefix() -> None:
    token = generate_token()
    assert token.startswith("gwd_")
    assert len(token) == 47
    assert is_token(token)
    assert generate_token() != token
    assert not is_token("gwd_short")
    assert not is_token("s3cret")
    assert not is_token(token + "x")


def test_tokens_are_stored_as_sha256_and_passwords_with_django() -> None:
    token = generate_token()
    assert hash_secret(token) == hash_token(token)
    assert is_token_hash(hash_secret(token))
    assert token not in hash_secret(token)
    assert not is_token_hash(hash_secret("s3cret"))
    assert check_slowly("s3cret", hash_secret("s3cret"))


@given(st.text(max_size=60))
def test_a_token_check_matches_only_its_own_token(secret: str) -> None:
    token = generate_token()
    assert check_token(token, hash_token(token))
    assert not check_token(secret, hash_token(token)) or secret == token
    assert not check_token(secret, None)  # no such device: never


@pytest.mark.parametrize(
    ("secret", "stored", "fast"),
    [
        ("token", "token hash", True),
        ("token", None, True),  # an unknown user costs what a known token device costs
        ("token", "django hash", False),
        ("password", "token hash", False),  # a password costs a hash, whoever is asked
        ("password", None, False),
        ("password", "django hash", False),
    ],
)
def test_the_cost_depends_on_what_was_presented(secret: str, stored: str, fast: bool) -> None:
    token = generate_token()
    secrets = {"token": token, "password": "s3cret"}
    encodings = {"token hash": hash_token(token), "django hash": make_password("x"), None: None}
    assert is_fast_check(secrets[secret], encodings[stored]) is fast


def test_slow_checks_refuse_unknown_users_and_token_hashes() -> None:
    assert not check_slowly("s3cret", None)
    assert not check_slowly("s3cret", hash_token(generate_token()))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_are_limited_per_source_and_refill() -> None:
    clock = FakeClock()
    limits = SourceLimits(3, 60.0, clock=clock)
    for _ in range(3):
        assert limits.allowed("10.0.0.1")
        limits.failed("10.0.0.1")
    assert not limits.allowed("10.0.0.1")
    assert limits.allowed("10.0.0.2")  # other sources are not affected
    clock.now += 20.0  # one failure's worth refills (3 per 60 s)
    assert limits.allowed("10.0.0.1")
    limits.failed("10.0.0.1")
    assert not limits.allowed("10.0.0.1")


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one subscriber's allocation
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_sources_are_ipv4_addresses_and_ipv6_networks(address: str, source: str) -> None:
    assert source_of(address) == source


def test_a_source_is_suspect_after_a_failure_and_trusted_after_a_success() -> None:
    clock = FakeClock()
    limits = SourceLimits(2, 60.0, trust_period=600.0, clock=clock)
    assert limits.standing("a") is Standing.UNKNOWN
    limits.succeeded("a")
    assert limits.standing("a") is Standing.TRUSTED
    limits.failed("a")
    assert limits.standing("a") is Standing.SUSPECT  # until its budget is whole again
    assert limits.allowed("a")
    clock.now += 30.0
    assert limits.standing("a") is Standing.TRUSTED
    clock.now += 600.0
    assert limits.standing("a") is Standing.UNKNOWN


def test_the_failure_table_is_bounded() -> None:
    limits = SourceLimits(1, 60.0, clock=FakeClock(), max_sources=2)
    for source in ("a", "b", "c"):
        limits.failed(source)
        limits.succeeded(source)
    assert limits.allowed("a")  # forgotten, least recently failed first
    assert limits.standing("a") is Standing.UNKNOWN
    assert not limits.allowed("b")
    assert not limits.allowed("c")
    with pytest.raises(ValueError, match="limit"):
        SourceLimits(0)


def test_a_verified_password_is_remembered_for_its_stored_hash_only() -> None:
    clock = FakeClock()
    verified = VerifiedPasswords(300.0, max_entries=2, clock=clock)
    stored = hash_secret("s3cret")
    assert not verified.accepts("pw", stored, "s3cret")  # nothing verified yet
    verified.verified("pw", stored, "s3cret")
    assert verified.accepts("pw", stored, "s3cret")
    assert not verified.accepts("pw", stored, "s3cret ")  # another secret
    assert not verified.accepts("other", stored, "s3cret")  # another device
    assert not verified.accepts("pw", hash_secret("s3cret"), "s3cret")  # its secret was set again
    assert not verified.accepts("pw", None, "s3cret")  # the device is gone or inactive
    clock.now += 299.0
    assert verified.accepts("pw", stored, "s3cret")
    clock.now += 1.0
    assert not verified.accepts("pw", stored, "s3cret")  # expired: the hasher again
    for name in ("a", "b", "c"):
        verified.verified(name, stored, "s3cret")
    assert not verified.accepts("a", stored, "s3cret")  # bounded: the oldest forgotten
    assert verified.accepts("b", stored, "s3cret")
    assert verified.accepts("c", stored, "s3cret")
    never = VerifiedPasswords(0.0)
    never.verified("pw", stored, "s3cret")
    assert not never.accepts("pw", stored, "s3cret")


def test_a_fair_queue_takes_sources_in_turn_within_bounds() -> None:
    queue: FairQueue[str] = FairQueue(per_source=2, total=4)
    assert queue.push("flood", "f1")
    assert queue.push("flood", "f2")
    assert not queue.push("flood", "f3")  # per-source bound
    assert queue.push("device", "d1")
    assert queue.push("other", "o1")
    assert not queue.push("late", "l1")  # total bound
    queue.remove("flood", "f2")
    queue.remove("flood", "missing")
    assert queue.push("flood", "f4")
    assert [queue.pop() for _ in range(5)] == ["f1", "d1", "o1", "f4", None]
    assert len(queue) == 0


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
            assert await asyncio.gather(running, third) == ["a", "c"]
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
