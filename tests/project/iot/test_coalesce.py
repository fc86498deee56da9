"""Throttle and Batches with time passed in: what is due when."""

from __future__ import annotations

import pytest

from project.iot.coalesce import Batches, Throttle


def test_throttle_sends_the_first_value_at_once_then_the_latest_per_interval() -> None:
    throttle: Throttle[str, int] = Throttle(0.1)
    throttle.put("d1", 1, now=0.0)
    assert throttle.take_due(0.0) == [("d1", 1)]
    for value in range(2, 102):  # 100 updates within one interval
        throttle.put("d1", value, now=0.0005 * value)
    assert throttle.next_due() == pytest.approx(0.1)
    assert throttle.take_due(0.09) == []
    assert throttle.take_due(0.1) == [("d1", 101)]  # trailing edge: the last state
    assert throttle.next_due() is None


def test_throttle_limits_each_key_on_its_own() -> None:
    throttle: Throttle[str, str] = Throttle(1.0)
    throttle.put("a", "a1", now=0.0)
    assert throttle.take_due(0.0) == [("a", "a1")]
    throttle.put("a", "a2", now=0.5)
    throttle.put("b", "b1", now=0.5)  # b was quiet: due at once
    assert throttle.take_due(0.5) == [("b", "b1")]
    assert throttle.take_due(1.0) == [("a", "a2")]
    throttle.put("a", "a3", now=5.0)  # quiet for longer than the interval
    assert throttle.take_due(5.0) == [("a", "a3")]


def test_a_100_per_second_publisher_yields_at_most_10_summaries_per_second() -> None:
    throttle: Throttle[str, int] = Throttle(0.1)
    sent = []
    for tick in range(100):  # one update every 10 ms for a second
        now = tick / 100
        throttle.put("d1", tick, now)
        sent += throttle.take_due(now)
    sent += throttle.take_all()
    assert len(sent) <= 11
    assert sent[-1] == ("d1", 99)


def test_batches_keep_every_item_and_release_after_the_interval() -> None:
    batches: Batches[str, int] = Batches(0.1, 100)
    for item in range(5):
        batches.add("d1", item, now=0.01 * item)
    batches.add("d2", 9, now=0.05)
    assert batches.take_due(0.099) == []
    [(key, batch)] = batches.take_due(0.1)
    assert (key, batch.items, batch.dropped) == ("d1", [0, 1, 2, 3, 4], 0)
    assert [(k, b.items) for k, b in batches.take_due(0.2)] == [("d2", [9])]
    assert batches.next_due() is None


def test_a_full_batch_is_due_at_once_and_what_overflows_is_counted() -> None:
    batches: Batches[str, int] = Batches(0.1, 3)
    for item in range(3):
        batches.add("d1", item, now=0.0)
    assert batches.next_due() == 0.0
    batches.add("d1", 3, now=0.0)  # nobody took the full batch yet
    [(_, batch)] = batches.take_due(0.0)
    assert (batch.items, batch.dropped) == ([0, 1, 2], 1)
    batches.add("d1", 4, now=0.01)
    assert batches.next_due() == pytest.approx(0.11)


def test_take_all_flushes_what_is_not_due_yet() -> None:
    batches: Batches[str, int] = Batches(10, 5)
    batches.add("d1", 1, now=0.0)
    assert [(k, b.items) for k, b in batches.take_all()] == [("d1", [1])]
    assert batches.next_due() is None
