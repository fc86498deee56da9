"""Seeded fuzzing of the HTTP and WebSocket doors over real sockets (a few seconds).

Random and mutated request heads, WebSocket handshakes and frames go to a server on
127.0.0.1 (tests/protocols/fuzz_doors.py); after each batch a well-formed client must
still be served and every connection must have ended, and the campaign may keep at
most ``MEMORY_BOUND`` (1 MiB) of Python memory. Crashes (tracebacks, ERROR lines,
500s, held connections) are listed with their input; the seed replays them.
``bench/fuzz`` runs the same campaigns for longer.
"""

from __future__ import annotations

from tests.protocols.fuzz_doors import knock


async def test_http_door() -> None:
    report = await knock("http", per_batch=500)
    assert report.stats.inputs == 1500
    assert {"200", "400"} <= report.stats.statuses.keys()


async def test_websocket_door() -> None:
    report = await knock("websocket", per_batch=150)
    assert report.stats.inputs == 450
    assert report.stats.statuses["ws"] > 300
