"""protocols.mqtt.liveness: who is overdue past the keep-alive, and why each one left."""

from __future__ import annotations

from protocols.mqtt.liveness import LOST, Liveness


def clock(*times: float) -> Liveness:
    """A liveness tracker whose clock reads ``times``, one per packet it records."""
    return Liveness(iter(times).__next__)


def test_a_device_is_overdue_past_one_and_a_half_keep_alives_of_silence() -> None:
    liveness = clock(100.0, 114.0)
    liveness.connected("d1")  # at 100
    assert not liveness.overdue("d1", 10, 115.0)  # exactly 1.5 x: not yet
    assert liveness.overdue("d1", 10, 115.1)
    liveness.heard("d1")  # at 114: any packet resets it
    assert not liveness.overdue("d1", 10, 129.0)
    assert liveness.overdue("d1", 10, 130.0)


def test_no_keep_alive_and_unknown_devices_are_never_overdue() -> None:
    liveness = clock(100.0)
    liveness.connected("d1")
    assert not liveness.overdue("d1", 0, 1e9)  # keep-alive 0 turns it off (§3.1.2.10)
    assert not liveness.overdue("stranger", 10, 1e9)
    liveness.forget("d1")  # being closed: no second verdict
    assert not liveness.overdue("d1", 10, 1e9)


def test_the_reason_a_device_left_is_said_once_then_forgotten() -> None:
    liveness = clock(100.0, 200.0)
    liveness.connected("d1")
    liveness.ending("d1", "keepalive")
    assert liveness.disconnected("d1") == "keepalive"
    assert liveness.disconnected("d1") == LOST  # nobody said why this time
    liveness.ending("d1", "takeover")
    liveness.connected("d1")  # a new connection starts without the old reason
    assert liveness.disconnected("d1") == LOST
