"""The bounded per-channel queues the Redis layers buffer received messages in."""

from __future__ import annotations

import asyncio

import pytest

from gateway.layers.redis.mailbox import Mailbox, Mailboxes, Payload


async def test_put_refuses_beyond_capacity_but_hands_over_to_a_waiter() -> None:
    box: Mailbox[int] = Mailbox(1)
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert box.put(1)  # straight to the waiter, not queued
    assert box.put(2)
    assert not box.put(3)
    assert await waiting == 1
    assert await box.get() == 2


async def test_a_get_cancelled_after_the_hand_over_keeps_the_item() -> None:
    box: Mailbox[int] = Mailbox(5)
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    box.put(1)
    waiting.cancel()  # the item was handed over, the task not yet resumed
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await box.get() == 1
    assert not box.waiters


def test_sweep_drops_expired_entries_and_forgets_idle_mailboxes() -> None:
    boxes = Mailboxes(lambda channel: 10)
    old, new = Payload(b"old", shares=1), Payload(b"new", shares=1)
    boxes["a"].put((100, old))
    boxes["a"].put((300, new))
    boxes["b"].put((100, old))
    assert boxes["c"] is boxes["c"]
    assert sorted(boxes.sweep(now_ms=200)) == ["a", "b"]
    assert set(boxes.boxes) == {"a"}  # b and c were empty and nobody waited
    assert list(boxes["a"].items) == [(300, new)]
