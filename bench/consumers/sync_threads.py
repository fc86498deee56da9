"""What Channels' thread-sensitive default costs sync consumers, against the opt-in pool.

Runs ``CONSUMERS`` SyncConsumer instances at once, each handling ``EVENTS`` events
through an ApplicationCommunicator (no server, no network), twice: with the
default (``thread_sensitive = True``: every handler in Django's one
thread-sensitive thread, as in Channels) and with ``thread_sensitive = False``
(gateway's thread pool). The handler either returns at once (the cost of the
thread hop itself) or blocks for ``--block-ms`` (a query, a file, an API call).

    .venv/bin/python bench/consumers/sync_threads.py [--consumers 8] [--events 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from gateway.consumer import SyncConsumer  # noqa: E402
from gateway.testing import ApplicationCommunicator  # noqa: E402


class Work(SyncConsumer):
    block_seconds = 0.0

    def bench_event(self, message: Any) -> None:
        if self.block_seconds:
            time.sleep(self.block_seconds)
        self.send({"type": "bench.done"})


async def one_consumer(thread_sensitive: bool, events: int, block: float) -> None:
    application = Work.as_asgi(thread_sensitive=thread_sensitive, block_seconds=block)
    async with ApplicationCommunicator(application, {"type": "bench"}) as communicator:
        for _ in range(events):
            await communicator.send_input({"type": "bench.event"})
            await communicator.receive_output(timeout=30)


async def measure(thread_sensitive: bool, consumers: int, events: int, block: float) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(one_consumer(thread_sensitive, events, block) for _ in range(consumers)))
    return consumers * events / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--block-ms", type=float, default=1.0)
    args = parser.parse_args()
    print(f"{args.consumers} sync consumers x {args.events} events each")
    print("| handler | thread-sensitive (default) | thread pool (opt-in) |")
    print("|---|---|---|")
    for label, block in (("returns at once", 0.0), (f"blocks {args.block_ms} ms", args.block_ms)):
        events = args.events if block == 0 else max(1, args.events // 5)
        rates = [
            await measure(sensitive, args.consumers, events, block / 1000)
            for sensitive in (True, False)
        ]
        print(f"| {label} | {rates[0]:,.0f} events/s | {rates[1]:,.0f} events/s |")


if __name__ == "__main__":
    asyncio.run(main())
