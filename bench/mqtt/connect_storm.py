"""Connect storms against the embedded broker (``gateway mqtt`` in its own process).

    .venv/bin/python -m bench.mqtt.connect_storm [--devices 1000] [--rounds 3]
        [--passwords 200] [--flood-seconds 10] [--flood-sources 200]
        [--legacy] [--server-root DIR] [--server-option=--mqtt-auth-workers=2 ...]

Against one broker process, on the appliance's database (SQLite) and Django's
default password hasher (PBKDF2), in turn:

1. **storm**: ``--devices`` devices with generated tokens connect at once, each from
   its own loopback address, ``--rounds`` times: the time until every one has its
   CONNACK 0x00, connect latency p50/p99/max, the broker's CPU seconds.
2. **passwords**: ``--passwords`` devices with chosen passwords connect at once, each
   retrying one second after a CONNACK 0x03 (server unavailable), like a device's
   reconnect back-off.
3. **flood**: ``--flood-sources`` attacker addresses each loop wrong credentials
   (unknown and wrong tokens, unknown and wrong passwords) for ``--flood-seconds``,
   while one token device and one password device, each from its own address,
   reconnect in a loop: their connect latency, and what the attackers were answered.

``--legacy`` stores every secret with Django's hasher (as gateway did before device
tokens); with ``--server-root`` pointing at a checkout of an older commit it gives
the "before" figures. The broker runs ``tests.protocols.mqtt.example:application``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
SETTINGS = """
SECRET_KEY = "bench-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "gateway.devices"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
CHANNEL_LAYERS = {{"default": {{"BACKEND": "gateway.layers.InMemoryChannelLayer"}}}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""


@dataclass
class Fleet:
    tokens: list[tuple[str, str]]
    passwords: list[tuple[str, str]]
    #: What the token devices' secrets are stored as, for the table.
    kind: str = "token devices"


def prepare(directory: Path, devices: int, passwords: int, legacy: bool) -> Fleet:
    """Write the settings module, migrate the SQLite database, create the fleet."""
    (directory / "storm_settings.py").write_text(SETTINGS.format(db=str(directory / "db.sqlite3")))
    sys.path.insert(0, str(directory))
    os.environ["DJANGO_SETTINGS_MODULE"] = "storm_settings"
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    from gateway.devices.credentials import generate_token, hash_token
    from gateway.devices.models import Device

    call_command("migrate", verbosity=0)
    token = generate_token()
    tokens = [(f"dev-{n:05d}", token if legacy else generate_token()) for n in range(devices)]
    slow_token = make_password(token) if legacy else None  # one hash for all: PBKDF2 is slow
    slow_password = make_password(PASSWORD)
    rows = [Device(username=name, password=slow_token or hash_token(s)) for name, s in tokens]
    rows += [Device(username=f"pw-{n:04d}", password=slow_password) for n in range(passwords)]
    Device.objects.bulk_create(rows, batch_size=500)
    kind = "devices, tokens stored with Django's hasher" if legacy else "token devices"
    return Fleet(tokens, [(f"pw-{n:04d}", PASSWORD) for n in range(passwords)], kind)


def start_server(
    directory: Path, root: Path, port: int, options: list[str]
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{directory}:{root}",
        "DJANGO_SETTINGS_MODULE": "storm_settings",
    }
    command = [
        sys.executable,
        "-m",
        "gateway.cli",
        "--log-level",
        "warning",
        "mqtt",
        "tests.protocols.mqtt.example:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]
    server = subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the broker did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def source(lane: int, n: int) -> str:
    """A loopback address of its own: 127.<lane>.<n // 250>.<n % 250 + 1>."""
    return f"127.{lane}.{n // 250}.{n % 250 + 1}"


async def connect(
    port: int, username: str, secret: str, client_id: str, address: str
) -> tuple[int, float, asyncio.StreamWriter | None]:
    """One CONNECT: its return code (-1: closed without one), latency, the open writer."""
    from protocols.mqtt.connect import Connect, encode_connect

    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    writer.write(encode_connect(Connect(client_id, username=username, password=secret.encode())))
    try:
        answer = await reader.readexactly(4)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.transport.abort()
        return -1, time.monotonic() - started, None
    code = answer[3]
    if code != 0:
        writer.transport.abort()
        return code, time.monotonic() - started, None
    return code, time.monotonic() - started, writer


def disconnect(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.write(b"\xe0\x00")
        writer.close()


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )


async def storm(port: int, pid: int, fleet: Fleet, rounds: int) -> list[str]:
    rows = []
    for round_number in range(1, rounds + 1):
        cpu = cpu_seconds(pid)
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                connect(port, name, secret, name, source(1, n))
                for n, (name, secret) in enumerate(fleet.tokens)
            )
        )
        elapsed = time.monotonic() - started
        codes = Counter(code for code, _, _ in results)
        rows.append(
            f"| storm {round_number} | {len(fleet.tokens)} {fleet.kind} at once | "
            f"{elapsed:.2f} s | {summary([latency for _, latency, _ in results])} | "
            f"{dict(codes)} | {cpu_seconds(pid) - cpu:.1f} |"
        )
        disconnect([writer for _, _, writer in results if writer is not None])
        await asyncio.sleep(1.0)  # let the broker see every DISCONNECT
    return rows


async def with_retries(port: int, name: str, secret: str, address: str) -> tuple[float, int]:
    """Connect, retrying 1 s after a refusal; (seconds until accepted, attempts)."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        code, _, writer = await connect(port, name, secret, name, address)
        if writer is not None:
            disconnect([writer])
            return time.monotonic() - started, attempts
        if code not in (3, -1):
            raise RuntimeError(f"{name} refused with {code}")
        await asyncio.sleep(1.0)


async def passwords(port: int, pid: int, fleet: Fleet) -> list[str]:
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            with_retries(port, name, secret, source(2, n))
            for n, (name, secret) in enumerate(fleet.passwords)
        )
    )
    elapsed = time.monotonic() - started
    attempts = sum(count for _, count in results)
    return [
        f"| passwords | {len(fleet.passwords)} password devices at once, retrying after 0x03 | "
        f"{elapsed:.2f} s | {summary([seconds for seconds, _ in results])} (until accepted) | "
        f"{attempts} attempts | {cpu_seconds(pid) - cpu:.1f} |"
    ]


@dataclass
class Flood:
    answers: Counter[int] = field(default_factory=Counter)
    token_latencies: list[float] = field(default_factory=list)
    password_latencies: list[float] = field(default_factory=list)


async def attacker(port: int, n: int, fleet: Fleet, until: float, flood: Flood) -> None:
    from gateway.devices.credentials import generate_token

    tries = [
        (fleet.tokens[n % len(fleet.tokens)][0], generate_token()),  # a wrong token
        (f"nobody-{n}", generate_token()),  # an unknown user's token
        (fleet.passwords[n % len(fleet.passwords)][0], f"guess-{n}"),  # a wrong password
        (f"nobody-{n}", "guess"),  # an unknown user's password
    ]
    attempt = 0
    while time.monotonic() < until:
        name, secret = tries[attempt % len(tries)]
        attempt += 1
        try:
            code, _, writer = await connect(port, name, secret, f"evil-{n}", source(3, n))
        except OSError:
            code, writer = -2, None
        flood.answers[code] += 1
        if writer is not None:
            disconnect([writer])


async def legitimate(
    port: int, name: str, secret: str, address: str, until: float, latencies: list[float]
) -> None:
    """Reconnect in a loop; each latency runs until accepted, retries after 0x03 included."""
    while time.monotonic() < until:
        seconds, _ = await with_retries(port, name, secret, address)
        latencies.append(seconds)
        await asyncio.sleep(0.2)


async def flood(port: int, pid: int, fleet: Fleet, seconds: float, sources: int) -> list[str]:
    result = Flood()
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    until = started + seconds
    token_name, token = fleet.tokens[0]
    password_name, password = fleet.passwords[0]
    for name, secret, address in [
        (token_name, token, "127.4.0.1"),
        (password_name, password, "127.4.0.2"),
    ]:
        await with_retries(port, name, secret, address)  # they have connected from there before
    await asyncio.gather(
        *(attacker(port, n, fleet, until, result) for n in range(sources)),
        legitimate(port, token_name, token, "127.4.0.1", until, result.token_latencies),
        legitimate(port, password_name, password, "127.4.0.2", until, result.password_latencies),
    )
    elapsed = time.monotonic() - started
    attempts = sum(result.answers.values())
    return [
        f"| flood | {sources} attacker addresses, wrong credentials for {seconds:.0f} s: "
        f"{attempts} attempts ({attempts / elapsed:.0f}/s) | {elapsed:.2f} s | - | "
        f"{dict(result.answers)} | {cpu_seconds(pid) - cpu:.1f} |",
        f"| flood | a token device reconnecting meanwhile ({len(result.token_latencies)} "
        f"connects) | - | {summary(result.token_latencies)} (until accepted) | - | - |",
        f"| flood | a password device reconnecting meanwhile "
        f"({len(result.password_latencies)} connects) | - | "
        f"{summary(result.password_latencies)} (until accepted) | - | - |",
    ]


async def run(args: argparse.Namespace, fleet: Fleet, pid: int) -> list[str]:
    rows = await storm(args.port, pid, fleet, args.rounds)
    if fleet.passwords:
        rows += await passwords(args.port, pid, fleet)
        await asyncio.sleep(1.0)
    if args.flood_seconds > 0 and fleet.passwords:
        rows += await flood(args.port, pid, fleet, args.flood_seconds, args.flood_sources)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passwords", type=int, default=200)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--flood-sources", type=int, default=200)
    parser.add_argument("--port", type=int, default=18830)
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--server-root", type=Path, default=ROOT)
    parser.add_argument("--server-option", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="connect-storm-") as directory:
        fleet = prepare(Path(directory), args.devices, args.passwords, args.legacy)
        server = start_server(Path(directory), args.server_root, args.port, args.server_option)
        try:
            rows = asyncio.run(run(args, fleet, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"\nbroker: {args.server_root}{' (legacy hashes)' if args.legacy else ''} "
        f"{' '.join(args.server_option)}\n"
    )
    print("| scenario | what | all done in | connect latency | answers | broker CPU s |")
    print("|---|---|---:|---|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
