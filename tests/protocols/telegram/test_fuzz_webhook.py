"""Seeded fuzzing of the Telegram webhook over real sockets (a few seconds).

Random and mutated webhook requests (odd bot ids, wrong secrets, broken, huge and
deeply nested JSON, updates of every kind) go through gateway's web server to the
webhook route (tests/protocols/fuzz_doors.py); after each batch a well-formed update
must still be accepted and reach its consumer, and the campaign may keep at most
``MEMORY_BOUND`` (1 MiB) of Python memory.
"""

from __future__ import annotations

from tests.protocols.fuzz_doors import knock


async def test_webhook_door() -> None:
    report = await knock("webhook", per_batch=300)
    assert {"200", "400", "403", "404"} <= report.stats.statuses.keys()
