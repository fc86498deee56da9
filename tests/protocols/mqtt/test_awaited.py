"""protocols.mqtt.awaited: answers by packet id, and failing what waits."""

from __future__ import annotations

import pytest

from protocols.mqtt.awaited import AwaitedPackets


async def test_an_answer_resolves_its_packets_future_only() -> None:
    awaited = AwaitedPackets()
    first, second = awaited.expect(1), awaited.expect(2)
    awaited.answer(2, [0x00, 0x80])
    assert await second == [0x00, 0x80]
    assert not first.done()
    assert len(awaited) == 1


async def test_an_unknown_or_repeated_answer_is_ignored() -> None:
    awaited = AwaitedPackets()
    future = awaited.expect(7)
    awaited.answer(8, [0])
    awaited.answer(7, [1])
    awaited.answer(7, [2])  # a duplicate PUBACK after a reconnect
    assert await future == [1]
    assert len(awaited) == 0


async def test_failing_all_fails_every_waiter_and_forgets_them() -> None:
    awaited = AwaitedPackets()
    futures = [awaited.expect(packet_id) for packet_id in (1, 2, 3)]
    futures[0].cancel()  # a caller that gave up
    awaited.fail_all(ConnectionError("the MQTT link went down"))
    assert len(awaited) == 0
    for future in futures[1:]:
        with pytest.raises(ConnectionError, match="went down"):
            await future
    awaited.answer(2, [0])  # the answer of a failed packet changes nothing
