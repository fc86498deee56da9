"""gateway.devices.limits: per-source failure budgets and standing, the fair queue (fake clock)."""

from __future__ import annotations

import pytest

from gateway.devices.limits import FairQueue, SourceLimits, Standing, source_of


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
