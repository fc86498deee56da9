"""The web benchmark, every row in ONE run: ``.venv/bin/python -m bench.web.run``.

Rows (WebSocket echo consumer + the small Django view on HTTP):
gateway server + gateway consumer, gateway server + Channels consumer, uvicorn +
Channels consumer, daphne + Channels consumer, and a bare websockets echo server as
the ceiling of the load generator. Then HTTP requests/s of the Django view and of a
raw ASGI app on each server, the servers measured in turn (see ``http_interleaved``).
Every server runs in its own process, gateway's as ``gateway web`` (its command
line); the load comes from two other processes.
Writes bench/web/RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.web import load

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
WORKERS = 2  # load processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Event loop of each gateway kind; ``auto`` (uvloop when installed) is what users get.
GATEWAY_LOOPS = {"gateway": "auto", "gateway-asyncio": "asyncio"}


def command(kind: str, app: str, port: int) -> list[str]:
    if kind in GATEWAY_LOOPS:  # exactly as users run it: the gateway command line
        return [PYTHON, "-m", "gateway.cli", "--log-level", "warning", "web", app,
                "--port", str(port), "--loop", GATEWAY_LOOPS[kind], "--no-access-log",
                "--lifespan", "off"]  # fmt: skip
    if kind in ("websockets", "frames"):
        return [PYTHON, "-m", "bench.web.serve", kind, str(port)]
    if kind == "uvicorn":  # its defaults: uvloop, httptools, websockets
        return [PYTHON, "-m", "uvicorn", app, "--port", str(port), "--no-access-log",
                "--log-level", "warning", "--lifespan", "off"]  # fmt: skip
    if kind == "daphne":
        return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    raise ValueError(kind)


class Server:
    def __init__(self, kind: str, app: str) -> None:
        self.port = free_port()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.web.settings", PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(command(kind, app, self.port), cwd=ROOT, env=env)
        self.wait_listening(kind)

    def wait_listening(self, kind: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


CTX = multiprocessing.get_context("spawn")


def in_processes(name: str, args_list: list[tuple[object, ...]]) -> list[object]:
    """Run ``load.<name>(*args)`` once per ``args`` in its own process; results in order."""
    results = CTX.Queue()
    processes = [
        CTX.Process(target=load.worker_main, args=(results, i, name, args))
        for i, args in enumerate(args_list)
    ]
    for process in processes:
        process.start()
    collected = dict(results.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(30)
    return [collected[i] for i in range(len(args_list))]


def echo(port: int, clients: int, messages: int) -> float:
    """Messages per second over all clients, split across the load processes."""
    barrier = CTX.Barrier(WORKERS)
    spans = in_processes("echo_worker", [(port, clients // WORKERS, messages, barrier)] * WORKERS)
    start = min(s for s, _ in spans)  # type: ignore[misc]
    end = max(e for _, e in spans)  # type: ignore[misc]
    return clients * messages / (end - start)


def latency(port: int, messages: int) -> tuple[float, float]:
    (result,) = in_processes("latency_worker", [(port, messages)])
    samples = sorted(result)  # type: ignore[call-overload]
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def http(port: int, path: str, connections: int, duration: float) -> float:
    barrier = CTX.Barrier(WORKERS)
    counts = in_processes(
        "http_worker", [(port, path, connections // WORKERS, duration, barrier)] * WORKERS
    )
    return sum(counts) / duration  # type: ignore[arg-type]


@dataclass
class HttpResult:
    """A server's best round: requests per second, and the server's own CPU time per
    request in that round (user + system), which other load on the machine changes
    much less than the rate."""

    rate: float = 0.0
    cpu_us: float = 0.0


def http_interleaved(apps: dict[str, str], args: argparse.Namespace) -> dict[str, HttpResult]:
    """Requests/s of each ``kind -> app`` server, all running at once and measured in
    turn for ``args.http_rounds`` rounds; the best round of each is kept.

    The machine is shared and noise only ever slows a measurement down; taking turns
    spreads it over every server instead of landing on whichever ran while something
    else was busy (an idle server costs nothing while another is measured).
    """
    servers: dict[str, Server] = {}
    try:
        for kind, app in apps.items():
            servers[kind] = Server(kind, app)
        for server in servers.values():
            http(server.port, "/", 4, 0.5)  # warm-up
        best = {kind: HttpResult() for kind in servers}
        for _ in range(args.http_rounds):
            for kind, server in servers.items():
                cpu = server.cpu_seconds()
                rate = http(server.port, "/", args.http_connections, args.http_seconds)
                cpu = server.cpu_seconds() - cpu
                if rate > best[kind].rate:
                    best[kind] = HttpResult(rate, cpu / (rate * args.http_seconds) * 1e6)
    finally:
        for server in servers.values():
            server.stop()
    return best


def memory_per_connection(server: Server, connections: int) -> float:
    manager_ready = [CTX.Event() for _ in range(WORKERS)]
    release = CTX.Event()
    time.sleep(0.5)
    base = server.rss()
    processes = [
        CTX.Process(
            target=load.idle_worker, args=(server.port, connections // WORKERS, ready, release)
        )
        for ready in manager_ready
    ]
    for process in processes:
        process.start()
    for ready in manager_ready:
        if not ready.wait(120):
            raise RuntimeError("idle connections did not open in time")
    time.sleep(1.0)  # let the server settle (accepted consumers, buffers)
    loaded = server.rss()
    release.set()
    for process in processes:
        process.join(30)
    return (loaded - base) / connections


@dataclass
class Row:
    name: str
    echo: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    memory: float = 0.0
    django: float | None = None
    raw: float | None = None
    raw_cpu_us: float | None = None
    notes: list[str] = field(default_factory=list)


WS_ROWS = [
    ("gateway server + gateway consumer", "gateway", "bench.web.apps:gateway_app"),
    ("gateway server + Channels consumer", "gateway", "bench.web.apps:channels_app"),
    ("uvicorn + Channels consumer", "uvicorn", "bench.web.apps:channels_app"),
    ("daphne + Channels consumer", "daphne", "bench.web.apps:channels_app"),
    ("websockets echo server (ceiling)", "websockets", "-"),
    ("raw TCP frame echo (load-generator ceiling)", "frames", "-"),
    # Informational: the same server on asyncio's own loop (`--loop asyncio`).
    (
        "gateway server on asyncio loop + gateway consumer",
        "gateway-asyncio",
        "bench.web.apps:gateway_app",
    ),
]
#: The servers measured on HTTP, with the server part of their rows' names.
HTTP_SERVERS = {
    "gateway": "gateway server",
    "uvicorn": "uvicorn",
    "daphne": "daphne",
    "gateway-asyncio": "gateway server on asyncio loop",
}
#: The servers of ``--raw-http-only`` (gateway on uvloop, uvicorn, daphne).
RAW_HTTP_SERVERS = ("gateway", "uvicorn", "daphne")
RAW_APP = "bench.web.apps:raw_http"
#: The Django view is the same ``http`` route of either app.
DJANGO_APPS = {
    kind: "bench.web.apps:gateway_app"
    if kind.startswith("gateway")
    else "bench.web.apps:channels_app"
    for kind in HTTP_SERVERS
}


def run(args: argparse.Namespace) -> list[Row]:
    rows = []
    for name, kind, app in WS_ROWS:
        print(f"== {name}", flush=True)
        row = Row(name)
        server = Server(kind, app)
        try:
            echo(server.port, 10, 20)  # warm-up
            row.echo = max(echo(server.port, args.clients, args.messages) for _ in range(2))
            row.p50, row.p99 = latency(server.port, args.latency_messages)
            row.memory = memory_per_connection(server, args.idle)
        finally:
            server.stop()
        print(row, flush=True)
        rows.append(row)
    print("== HTTP, Django view", flush=True)
    django = http_interleaved(DJANGO_APPS, args)
    print(django, flush=True)
    print("== HTTP, raw ASGI app", flush=True)
    raw = http_interleaved(dict.fromkeys(HTTP_SERVERS, RAW_APP), args)
    print(raw, flush=True)
    for row in rows:
        for kind, label in HTTP_SERVERS.items():
            if row.name.split(" + ")[0] == label:
                row.django, row.raw, row.raw_cpu_us = (
                    django[kind].rate,
                    raw[kind].rate,
                    raw[kind].cpu_us,
                )
    return rows


def raw_http_only(args: argparse.Namespace) -> str:
    """``--raw-http-only``: the raw ASGI HTTP scenario alone, one line of results."""
    raw = http_interleaved(dict.fromkeys(RAW_HTTP_SERVERS, RAW_APP), args)
    parts = [f"{kind} {r.rate:,.0f} req/s ({r.cpu_us:.1f} us CPU/req)" for kind, r in raw.items()]
    uvicorn = raw["uvicorn"]
    ours = raw["gateway"]
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f}: " + "; ".join(parts) + f"; gateway/uvicorn "
        f"{ratio(ours.rate, uvicorn.rate)} req/s, {ratio(ours.cpu_us, uvicorn.cpu_us)} CPU/req"
    )


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(rows: list[Row], args: argparse.Namespace, seconds: float) -> str:
    by = {row.name.split(" + ")[0].split(" (")[0]: row for row in rows}
    ours, uvicorn, daphne = rows[0], by["uvicorn"], by["daphne"]
    ours_channels = rows[1]
    on_asyncio = by["gateway server on asyncio loop"]
    lines = [
        "# Web server benchmark",
        "",
        f"Command: `.venv/bin/python -m bench.web.run` ({seconds:.0f} s; {os.cpu_count()} CPUs "
        "shared by the server and the load processes), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"WebSocket echo: {args.clients} clients x {args.messages} messages of 64 B, ping-pong; "
        f"latency: 1 client, {args.latency_messages} sequential round trips; HTTP: "
        f"{args.http_connections} keep-alive connections for {args.http_seconds:g} s, the "
        f"servers running side by side and measured in turn, best of {args.http_rounds} rounds "
        "(echo: best of two); memory: "
        f"RSS growth over {args.idle} idle WebSocket connections. Load from {WORKERS} "
        "separate processes (raw sockets, precomputed frames, uvloop).",
        "",
        "| row | echo msg/s | p50 us | p99 us | Django view req/s | raw ASGI req/s "
        "| KiB per idle WS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        django = f"{row.django:,.0f}" if row.django else "-"
        raw = f"{row.raw:,.0f}" if row.raw else "-"
        lines.append(
            f"| {row.name} | {row.echo:,.0f} | {row.p50:,.0f} | {row.p99:,.0f} | {django} "
            f"| {raw} | {row.memory / 1024:,.1f} |"
        )
    lines += [
        "",
        "Ratios (gateway server + gateway consumer against each Channels stack):",
        "",
        "| metric | vs uvicorn | vs daphne | target |",
        "|---|---:|---:|---|",
        f"| echo throughput | {ratio(ours.echo, uvicorn.echo)} | {ratio(ours.echo, daphne.echo)} "
        "| >= 1.5x uvicorn, >= 3x daphne |",
        f"| Django view req/s | {ratio(ours.django, uvicorn.django)} "
        f"| {ratio(ours.django, daphne.django)} | >= 1.0x uvicorn |",
        f"| raw ASGI req/s | {ratio(ours.raw, uvicorn.raw)} | {ratio(ours.raw, daphne.raw)} "
        "| >= 1.0x uvicorn |",
        f"| memory per idle WS (lower is better) | {ratio(ours.memory, uvicorn.memory)} "
        f"| {ratio(ours.memory, daphne.memory)} | <= 0.6x daphne |",
        "",
        "Server CPU time per raw ASGI request, user + system, in each server's best "
        "round (lower is better; other load on the machine moves it much less than "
        "requests/s): "
        + ", ".join(
            f"{row.name.split(' + ')[0]} {row.raw_cpu_us:.1f} us"
            for row in rows
            if row.raw_cpu_us and row is not ours_channels
        )
        + f" (gateway/uvicorn {ratio(ours.raw_cpu_us, uvicorn.raw_cpu_us)}).",
        "",
        "Server alone (both running the Channels consumer): gateway server echo "
        f"{ratio(ours_channels.echo, uvicorn.echo)} uvicorn, "
        f"{ratio(ours_channels.echo, daphne.echo)} daphne.",
        "",
        "Event loops: `gateway web` runs on uvloop when it is installed (`--loop auto`, "
        "the default), as uvicorn does; every gateway row but the last is on uvloop. On "
        "asyncio's own loop (`--loop asyncio`): echo "
        f"{ratio(on_asyncio.echo, uvicorn.echo)} uvicorn, Django view "
        f"{ratio(on_asyncio.django, uvicorn.django)}, raw ASGI "
        f"{ratio(on_asyncio.raw, uvicorn.raw)}, memory {ratio(on_asyncio.memory, daphne.memory)} "
        "daphne.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--latency-messages", type=int, default=2000)
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--http-seconds", type=float, default=3.0)
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument(
        "--raw-http-only",
        action="store_true",
        help="only the raw ASGI HTTP scenario on gateway, uvicorn and daphne; print, write nothing",
    )
    args = parser.parse_args()
    if args.raw_http_only:
        print(raw_http_only(args))
        return
    started = time.monotonic()
    rows = run(args)
    text = report(rows, args, time.monotonic() - started)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
