"""Long fuzz campaigns against each door: the suite's fuzz tests, for minutes.

    .venv/bin/python -m bench.fuzz.run [--seconds 60] [--door http|websocket|webhook]
                                       [--seed N] [--out bench/fuzz/RESULTS.md]

For each door (tests/protocols/fuzz_doors.py) a server runs in this process on
127.0.0.1; batches of 200 seeded random and mutated inputs go to it for ``--seconds``
seconds, each batch followed by a well-formed client that must be served. Reported:
inputs tried, their answers, crashes (an ERROR line or traceback, a 500, a connection
held after the client's EOF), failed health checks, the Python memory the campaign kept
(tracemalloc, after a warm-up batch) and the process's RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import random
import resource
import sys
from pathlib import Path

import django
from django.conf import settings

settings.configure(INSTALLED_APPS=[], USE_TZ=True)
django.setup()

from tests.protocols import fuzzing  # noqa: E402
from tests.protocols.fuzz_doors import DOORS, door  # noqa: E402

KIB = 1024


def rss_kib() -> int:
    """Resident set size now (Linux /proc), in KiB."""
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * resource.getpagesize() // KIB


async def knock(name: str, seconds: float, seed: int) -> tuple[fuzzing.Report, int, int]:
    async with door(name) as target:
        before = rss_kib()
        report = await fuzzing.campaign(
            target.port, random.Random(seed), target.make, target.healthy, seconds=seconds
        )
        return report, before, rss_kib()


def row(name: str, report: fuzzing.Report, before: int, after: int) -> str:
    answers = ", ".join(f"{k} {v}" for k, v in report.stats.statuses.most_common(6))
    return (
        f"| {name} | {report.seconds:.0f} s | {report.stats.inputs:,} | "
        f"{len(report.stats.crashes)} | {report.unhealthy} of {report.batches} | "
        f"{report.memory_growth / KIB:.0f} KiB | {before / KIB:.0f} → {after / KIB:.0f} MiB | "
        f"{answers} |"
    )


async def main(args: argparse.Namespace) -> str:
    lines = [
        f"Run {datetime.date.today()}: `python -m bench.fuzz.run --seconds {args.seconds:g} "
        f"--seed {args.seed}`, batches of 200 inputs, Python "
        f"{'.'.join(map(str, sys.version_info[:3]))}.",
        "",
        "| door | time | inputs | crashes | failed health checks | Python memory kept "
        "| RSS before → after | commonest answers |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    crashes: list[str] = []
    for name in args.door or DOORS:
        report, before, after = await knock(name, args.seconds, args.seed)
        lines.append(row(name, report, before, after))
        crashes += [f"- {name}: {crash}" for crash in report.stats.crashes[:20]]
        print(lines[-1], flush=True)
    return "\n".join([*lines, "", *(crashes or ["No crashes."])]) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per door (default: 60)")
    parser.add_argument("--door", action="append", choices=DOORS, help="default: every door")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here")
    arguments = parser.parse_args()
    text = asyncio.run(main(arguments))
    print(text)
    if arguments.out is not None:
        arguments.out.write_text(text)
