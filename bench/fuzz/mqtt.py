"""A long fuzz of the embedded MQTT broker: tests/protocols/mqtt/test_fuzz.py, for minutes.

    .venv/bin/python -m bench.fuzz.mqtt [--seconds 60] [--seed N] [--batch 50]

The broker runs in this process on 127.0.0.1 (anonymous clients allowed, a device
``d1`` with a token, a connect timeout of 0.5 s and packets of at most 4 KiB so that
damaged packets hit every limit); batches of ``--batch`` seeded sessions
(tests/protocols/mqtt/fuzzing.py: random, mutated and valid CONNECTs and packets, as
anonymous, as ``d1``, with wrong and unknown credentials) run at once, each batch
followed by a well-formed client that must be served. Reported in the table of
bench/fuzz/RESULTS.md: sessions, crashes (ERROR log lines), failed health checks,
the Python memory the campaign kept (tracemalloc, after a warm-up batch), the RSS
before and after, and the commonest answers (CONNACK return codes, connections the
server closed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import logging
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import django
from django.conf import settings

settings.configure(INSTALLED_APPS=[], USE_TZ=True)
django.setup()

from gateway.devices.authenticator import DeviceAuthenticator, SlowLane  # noqa: E402
from gateway.devices.credentials import generate_token  # noqa: E402
from gateway.devices.limits import SourceLimits  # noqa: E402
from gateway.routing import TopicRouter  # noqa: E402
from protocols.mqtt.broker import BrokerLink  # noqa: E402
from protocols.mqtt.door import DoorLimits  # noqa: E402
from protocols.mqtt.server import MqttServer  # noqa: E402
from tests.protocols.mqtt.fakes import FakeDevices  # noqa: E402
from tests.protocols.mqtt.fuzzing import (  # noqa: E402
    Credentials,
    Tally,
    amqtt_internal,
    run_batch,
)

KIB = 1024
#: Seconds between the last batch and counting the connections still open.
SETTLE = 10.0


class Errors(logging.Handler):
    """ERROR records: gateway's (crashes: there must be none) and amqtt's own, apart."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self.amqtt: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if amqtt_internal(record):
            error = record.exc_info[1] if record.exc_info else None
            what = type(error).__name__ if error is not None else record.getMessage()[:60]
            self.amqtt[what] += 1
        else:
            self.messages.append(f"{record.name}: {record.getMessage()[:200]}")


def rss_kib() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * resource.getpagesize() // KIB


async def campaign(args: argparse.Namespace) -> str:
    token = generate_token()
    authenticator = DeviceAuthenticator(SlowLane(1), SourceLimits(10_000), FakeDevices(d1=token))
    limits = DoorLimits(connect_timeout=0.5, max_packet_size=4096, takeover_timeout=2.0)
    link = BrokerLink(
        "127.0.0.1", 0, allow_anonymous=True, limits=limits, authenticator=authenticator
    )
    server = MqttServer(TopicRouter([]), link, channel_layer_alias=None)
    await server.start()
    logins = [
        Credentials(),
        Credentials("d1", token.encode()),
        Credentials("d1", b"wrong"),
        Credentials("nobody", generate_token().encode()),
    ]
    rng = random.Random(args.seed)
    tally = Tally()
    unhealthy = batches = 0
    errors = Errors()
    logging.getLogger().addHandler(errors)
    rss_before = rss_kib()
    try:
        await run_batch(link.port, logins, rng, tally, args.batch, linger=0.1)  # warm-up
        gc.collect()
        tracemalloc.start()
        kept_before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            batches += 1
            try:
                await run_batch(link.port, logins, rng, tally, args.batch, linger=0.1)
            except (AssertionError, TimeoutError, OSError) as exc:
                unhealthy += 1
                errors.messages.append(f"health check failed: {exc!r}")
        elapsed = time.monotonic() - started
        still_open = link.door.open
        await asyncio.sleep(SETTLE)  # amqtt waits up to 5 s for acknowledgements
        settled = link.door.open
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - kept_before
        tracemalloc.stop()
    finally:
        logging.getLogger().removeHandler(errors)
        await server.stop(5.0)
    answers = [f"CONNACK {code:#04x} {count}" for code, count in sorted(tally.codes.items())]
    answers.append(f"closed by the server {tally.closed_by_server}")
    if errors.amqtt:
        logged = ", ".join(f"{what} {count}" for what, count in errors.amqtt.most_common())
        answers.append(f"amqtt's own task errors logged: {logged}")
    row = (
        f"| mqtt | {elapsed:.0f} s | {tally.sessions:,} | {len(errors.messages)} | "
        f"{unhealthy} of {batches} | {kept / KIB:.0f} KiB | "
        f"{rss_before / KIB:.0f} → {rss_kib() / KIB:.0f} MiB | {', '.join(answers)} |"
    )
    crashes = [f"- mqtt: {message}" for message in errors.messages[:20]] or ["No crashes."]
    header = (
        f"Run {datetime.date.today()}: `python -m bench.fuzz.mqtt --seconds {args.seconds:g} "
        f"--seed {args.seed} --batch {args.batch}`, Python "
        f"{'.'.join(map(str, sys.version_info[:3]))}; connections open at the end: "
        f"{still_open}, {SETTLE:g} s later: {settled}."
    )
    return "\n".join([header, "", row, "", *crashes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    parser.add_argument("--batch", type=int, default=50)
    print(asyncio.run(campaign(parser.parse_args())))


if __name__ == "__main__":
    main()
