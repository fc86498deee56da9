"""A seeded fuzz of the embedded broker over real sockets, bounded to a few seconds.

Random and mutated packets from many connections at once; after every batch a
well-formed client is still served, gateway logs no error (amqtt's own task failures
are counted apart: see fuzzing.amqtt_internal), and the process's memory stays
bounded. bench/fuzz/mqtt.py runs the same for minutes.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.devices.authenticator import DeviceAuthenticator, SlowLane
from gateway.devices.credentials import generate_token
from gateway.devices.limits import SourceLimits
from gateway.routing import TopicRouter
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.door import DoorLimits
from tests.protocols.mqtt.fakes import FakeDevices
from tests.protocols.mqtt.fuzzing import Credentials, Tally, amqtt_internal, run_batch

pytestmark = pytest.mark.mqtt

SEED = 20261204
TOKEN = generate_token()


def resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


async def test_random_and_mutated_packets_never_break_the_broker(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = DeviceAuthenticator(SlowLane(1), SourceLimits(10_000), FakeDevices(d1=TOKEN))
    limits = DoorLimits(connect_timeout=0.5, max_packet_size=4096, takeover_timeout=2.0)
    link = BrokerLink(
        "127.0.0.1", 0, allow_anonymous=True, limits=limits, authenticator=authenticator
    )
    await serve(TopicRouter([]), link)
    logins = [
        Credentials(),
        Credentials("d1", TOKEN.encode()),
        Credentials("d1", b"wrong"),
        Credentials("nobody", generate_token().encode()),
    ]
    rng = random.Random(SEED)
    tally = Tally()
    before = resident_bytes()
    with caplog.at_level(logging.ERROR):
        for _ in range(16):
            await run_batch(link.port, logins, rng, tally, size=30, linger=0.1)
    grown = resident_bytes() - before
    assert tally.probes == 16
    assert tally.accepted > 0
    assert tally.refused > 0
    assert tally.closed_by_server > 0
    assert grown < 40 * 1024 * 1024, f"memory grew by {grown / 1e6:.1f} MB"
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and not amqtt_internal(record)
    ]
    assert not errors, errors[0].getMessage()
