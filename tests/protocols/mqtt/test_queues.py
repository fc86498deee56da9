"""protocols.mqtt.queues: the MQTT server's pending and redelivery queues, data in, data out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt.queues import PendingQueue, RedeliveryQueue


def test_pending_queue_pauses_at_its_bound_and_resumes_at_half() -> None:
    pending: PendingQueue[str] = PendingQueue(4)
    assert [pending.put(m) for m in "abc"] == [False, False, False]
    assert not pending.paused
    assert not pending.resume()  # not paused: nothing to resume
    assert pending.put("d")  # the bound: pause now
    assert pending.paused
    assert not pending.put("e")  # already paused: said once
    assert list(pending) == ["a", "b", "c", "d", "e"]
    assert pending.popleft() == "a"
    assert pending.popleft() == "b"
    assert not pending.resume()  # 3 left, above half of 4
    assert pending.popleft() == "c"
    assert pending.resume()  # 2 left: half
    assert not pending.paused
    assert not pending.resume()  # said once
    assert not pending.put("f")  # 3: below the bound again
    assert pending.put("g")  # 4: pauses again
    assert list(pending) == ["d", "e", "f", "g"]


def test_pending_queue_bound_at_least_two() -> None:
    with pytest.raises(ValueError, match="inflight must be at least 2"):
        PendingQueue(1)
    assert PendingQueue(2).low == 1
    assert PendingQueue(5).low == 2


@given(st.integers(2, 50), st.lists(st.booleans(), max_size=200))
def test_pending_queue_says_pause_and_resume_alternately(bound: int, puts: list[bool]) -> None:
    """Pause and resume alternate, pause first; FIFO order always; paused means a pause
    was said last; never resumed above half the bound."""
    pending: PendingQueue[int] = PendingQueue(bound)
    said: list[str] = []
    put = taken = 0
    for is_put in puts:
        if is_put:
            if pending.put(put):
                said.append("pause")
                assert len(pending) == bound
            put += 1
        elif pending:
            assert pending.popleft() == taken
            taken += 1
            if pending.resume():
                said.append("resume")
                assert len(pending) <= bound // 2
        assert pending.paused == (said[-1:] == ["pause"])
    assert said == ["pause", "resume"] * (len(said) // 2) + ["pause"] * (len(said) % 2)
    assert list(pending) == list(range(taken, put))


def test_redelivery_queue_keeps_order_per_add() -> None:
    redeliver: RedeliveryQueue[str] = RedeliveryQueue(1.0)
    assert not redeliver
    redeliver.add("k1", ["a", "b"])
    redeliver.add("k2", iter(["c"]))
    redeliver.add("k1", [])
    assert list(redeliver) == [("k1", "a"), ("k1", "b"), ("k2", "c")]
    assert redeliver.popleft() == ("k1", "a")


def test_redelivery_queue_waits_after_a_hold() -> None:
    redeliver: RedeliveryQueue[str] = RedeliveryQueue(1.5)
    assert redeliver.wait(100.0) == 0.0  # never held
    redeliver.hold(100.0)
    assert redeliver.due == 101.5
    assert redeliver.wait(100.0) == 0.0  # nothing queued: nothing to wait for
    redeliver.add("k", ["a"])
    assert redeliver.wait(100.0) == 1.5
    assert redeliver.wait(101.0) == 0.5
    assert redeliver.wait(101.5) == 0.0
    assert redeliver.wait(200.0) == 0.0
    redeliver.hold(200.0)  # held again: from the new time
    assert redeliver.wait(200.5) == 1.0
