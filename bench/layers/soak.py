"""Soak: four processes on a Redis channel layer while their Redis crashes twice.

What it measures
----------------
For each layer class (gateway's ``RedisChannelLayer``, "core", and
``RedisPubSubChannelLayer``, "pubsub"), four OS processes share one private
``redis-server``:

* R1 and R2 only receive, never send: each makes a process-local channel with
  ``new_channel()``, adds it to group ``soak`` and receives on it, and also receives on
  a normal channel of its own (``soak.r1`` / ``soak.r2``);
* S1 and S2 only send, each at a steady rate, cycling through
  ``group_send("soak", ...)``, ``send(<R1's or R2's local channel>, ...)`` and
  ``send("soak.r1" | "soak.r2", ...)``. Every message names its sender and carries a
  sequence number.

A third and two thirds into the run the redis-server is killed (SIGKILL; it runs
without persistence, so it comes back empty) and restarted on the same port. An
outage window runs from ``--lead`` (1 s) before the kill, since messages still queued
in Redis at the crash die with it, until ``--grace`` (3 s) after Redis answers PING
again: the layers' reconnect loops back off up to 2 s, plus time to reconnect and
resubscribe. The receivers never re-join the group after a restart: restoring
memberships is the layer's job.

At the end every sent message is matched against what the receivers got, per
(sender, seq, recipient channel); a ``group_send`` expects one delivery to each of the
two members:

* refused: the send raised ``ChannelLayerUnavailable`` or ``ChannelFull``, so the
  sender knows; nothing is expected;
* delivered, and duplicates (received more than once);
* lost during outages: sent without error, overlapping a window, never received;
  allowed, the layers deliver at most once (with ``RedisPubSubChannelLayer`` a message
  published while its receiver resubscribes is lost too, still inside the window);
* lost outside outages: sent without error, clear of every window, never received;
  must be 0;
* sent after the last recovery: delivered / expected, to show the layer recovered.

Both layers run at the same time, each against its own redis-server with its own four
processes, on the same schedule, so a run takes the duration plus about 10 s. Load
goes to 127.0.0.1 only; the shared Redis on 6379 is never touched. ``--outage-timeout``
sets the layers' ``outage_timeout`` (how long a send waits for Redis to come back).
The exit status is 1 when anything was lost
outside outages, delivered twice or delivered to the wrong channel.

Run (prints a markdown table; ``--out`` writes it into a results file, between the
``<!-- soak:start -->`` and ``<!-- soak:end -->`` marks, or appended)::

    .venv/bin/python bench/layers/soak.py --duration 600 --out bench/layers/SOAK.md
    .venv/bin/python bench/layers/soak.py --duration 60 --layer core --rate 100

``--keep`` keeps every process's records (JSON lines), its log and the run's outage
windows (``soak.json``) in the temporary directory it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LAYERS = {
    "core": "gateway.layers.redis.RedisChannelLayer",
    "pubsub": "gateway.layers.redis.RedisPubSubChannelLayer",
}
GROUP = "soak"
KINDS = ("group", "local", "normal")
RECEIVERS = ("R1", "R2")
SENDERS = ("S1", "S2")
#: Outcomes of a send the sender knows were refused.
REFUSED = ("unavailable", "full")
#: Seconds a sender or receiver pauses after a failed call.
ERROR_PAUSE = 0.1
#: A sender that fell this far behind its rate skips ahead instead of bursting.
MAX_LAG = 1.0
START_MARK = "<!-- soak:start -->"
END_MARK = "<!-- soak:end -->"


# Processes: helpers shared by the parent and the children ------------------------------


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this child if the soak itself dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def spare_port() -> int:
    """A free port on 127.0.0.1, never the shared Redis' 6379."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != 6379:
            return port


class RedisServer:
    """A private redis-server without persistence; ``kill`` and ``start`` crash and restart it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = spare_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> float:
        """Start it and wait until it answers PING; returns that moment (wall clock)."""
        binary = shutil.which("redis-server") or "redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.directory), "--logfile", "redis.log"]
        self.process = subprocess.Popen(
            [binary, *args],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the soak only, which kills us
            preexec_fn=_die_with_parent,
        )
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.answers():
                return time.time()
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> float:
        """SIGKILL: a crash, nothing saved. Returns the moment it died."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        return time.time()


class Child:
    """One soak process running this file with ``--child``; closing its stdin stops it."""

    def __init__(self, name: str, spec: dict[str, Any], directory: Path) -> None:
        self.name = name
        self.records = directory / f"{name}.jsonl"
        self.log = directory / f"{name}.log"
        spec = {**spec, "name": name, "records": str(self.records)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_parent,
            )

    def ready(self, timeout: float) -> dict[str, Any]:
        """The one line the child prints once it is set up."""
        stdout = self.process.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if readable else b""
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start. Its log ends:\n{tail}")
        announced: dict[str, Any] = json.loads(line)
        return announced

    def stop(self, timeout: float) -> bool:
        """Close stdin (the stop signal), wait; kill it if late. True if it exited cleanly."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            return self.process.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


# The children ------------------------------------------------------------------------


def make_layer(class_path: str, config: dict[str, Any]) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**config)


def announce(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def stop_on_stdin_eof(stop: asyncio.Event) -> None:
    """Set ``stop`` when the parent closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


async def close_layer(layer: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(layer.close(), 5)


def plan(seq: int, targets: list[list[str]]) -> tuple[str, str]:
    """(kind, target) of message ``seq``: group, local, normal, in turn; R1, R2 in turn."""
    kind = KINDS[seq % len(KINDS)]
    if kind == "group":
        return kind, GROUP
    local, normal = targets[(seq // len(KINDS)) % len(targets)]
    return kind, local if kind == "local" else normal


async def send_one(
    layer: Any, kind: str, target: str, message: dict[str, Any], timeout: float
) -> str:
    """Send; the outcome is "ok", "unavailable", "full", "timeout" or "error:<type>"."""
    from gateway.exceptions import ChannelFull, ChannelLayerUnavailable

    try:
        async with asyncio.timeout(timeout):
            if kind == "group":
                await layer.group_send(target, message)
            else:
                await layer.send(target, message)
    except ChannelLayerUnavailable:
        return "unavailable"
    except ChannelFull:
        return "full"
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error:{type(exc).__name__}"
    return "ok"


async def run_sender(spec: dict[str, Any], out: IO[str]) -> None:
    """Send until stopped. Records: ``[seq, kind, target, started, ended, outcome]``."""
    layer = make_layer(spec["layer"], spec["config"])
    stop = asyncio.Event()
    stop_on_stdin_eof(stop)
    interval = 1 / spec["rate"]
    announce({"ready": True})
    seq = 0
    next_at = last_flush = time.time()
    while not stop.is_set() and time.time() < spec["deadline"]:
        kind, target = plan(seq, spec["targets"])
        message = {"type": "soak.message", "sender": spec["name"], "seq": seq, "kind": kind}
        started = time.time()
        outcome = await send_one(layer, kind, target, message, spec["call_timeout"])
        out.write(json.dumps([seq, kind, target, started, time.time(), outcome]) + "\n")
        seq += 1
        if outcome != "ok":
            await asyncio.sleep(ERROR_PAUSE)
        if started - last_flush >= 1:
            out.flush()
            last_flush = started
        next_at = max(next_at + interval, time.time() - MAX_LAG)
        await asyncio.sleep(max(0.0, next_at - time.time()))
    out.write(json.dumps({"stats": layer.stats.as_dict()}) + "\n")
    await close_layer(layer)


async def receive_loop(layer: Any, channel: str, out: IO[str], errors: Counter[str]) -> None:
    """Receive on ``channel`` forever. Records: ``[sender, seq, channel, received]``."""
    while True:
        try:
            message = await layer.receive(channel)
        except Exception as exc:
            errors[type(exc).__name__] += 1
            await asyncio.sleep(ERROR_PAUSE)
            continue
        record = [message.get("sender"), message.get("seq"), channel, time.time()]
        out.write(json.dumps(record) + "\n")


async def run_receiver(spec: dict[str, Any], out: IO[str]) -> None:
    """Join the group with a new local channel, receive on it and on a normal channel."""
    layer = make_layer(spec["layer"], spec["config"])
    local = await layer.new_channel()
    await layer.group_add(GROUP, local)
    stop = asyncio.Event()
    stop_on_stdin_eof(stop)
    errors: Counter[str] = Counter()
    loops = [
        asyncio.ensure_future(receive_loop(layer, channel, out, errors))
        for channel in (local, spec["channel"])
    ]
    announce({"local": local})
    while not stop.is_set() and time.time() < spec["deadline"]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1)
        out.flush()
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    stats = {"stats": layer.stats.as_dict(), "receive_errors": dict(errors)}
    out.write(json.dumps(stats) + "\n")
    await close_layer(layer)


def child_main(spec_json: str) -> None:
    import logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = json.loads(spec_json)
    role = run_receiver if spec["role"] == "receiver" else run_sender
    with open(spec["records"], "w") as out:
        asyncio.run(role(spec, out))


# The parent --------------------------------------------------------------------------


@dataclass
class Window:
    """One outage, wall clock: Redis killed, answering again; [start, end] counts as outage."""

    killed: float
    answering: float
    start: float
    end: float


class LayerRun:
    """One layer class under soak: its redis-server, two receivers, two senders."""

    def __init__(self, key: str, args: argparse.Namespace, workdir: Path) -> None:
        self.key = key
        self.class_path = LAYERS[key]
        self.directory = workdir / key
        self.directory.mkdir()
        self.redis = RedisServer(self.directory)
        self.receivers: dict[str, Child] = {}
        self.senders: dict[str, Child] = {}
        self.locals: dict[str, str] = {}
        self.windows: list[Window] = []
        self.clean: dict[str, bool] = {}
        self.config = layer_config(self.redis, args)

    def spec(self, role: str, deadline: float) -> dict[str, Any]:
        return {"role": role, "layer": self.class_path, "config": self.config, "deadline": deadline}

    def start_receivers(self, deadline: float) -> None:
        for name in RECEIVERS:
            spec = {**self.spec("receiver", deadline), "channel": normal_channel(name)}
            self.receivers[name] = Child(name, spec, self.directory)

    def start_senders(self, deadline: float, args: argparse.Namespace) -> None:
        targets = [[self.locals[name], normal_channel(name)] for name in RECEIVERS]
        spec = {
            **self.spec("sender", deadline),
            "targets": targets,
            "rate": args.rate,
            "call_timeout": args.outage_timeout + 10,
        }
        for name in SENDERS:
            self.senders[name] = Child(name, spec, self.directory)

    def crash(self) -> float:
        return self.redis.kill()

    def recover(self, killed: float, args: argparse.Namespace) -> None:
        answering = self.redis.start()
        self.windows.append(Window(killed, answering, killed - args.lead, answering + args.grace))

    def stop(self, children: dict[str, Child], timeout: float) -> None:
        for name, child in children.items():
            self.clean[name] = child.stop(timeout)

    def save(self, started: float) -> None:
        """What the records need to be read again by hand (with ``--keep``)."""
        windows = [vars(window) for window in self.windows]
        run = {"started": started, "locals": self.locals, "windows": windows}
        (self.directory / "soak.json").write_text(json.dumps(run, indent=1))

    def kill_everything(self) -> None:
        for child in [*self.senders.values(), *self.receivers.values()]:
            child.kill()
        self.redis.kill()


def normal_channel(receiver: str) -> str:
    return f"soak.{receiver.lower()}"


def layer_config(redis: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {
        "hosts": [redis.url],
        "prefix": "soak",
        "outage_timeout": args.outage_timeout,
    }
    if args.capacity is not None:
        config["capacity"] = args.capacity
    return config


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def soak(runs: list[LayerRun], args: argparse.Namespace) -> float:
    """Run the whole timeline; returns the start time (wall clock)."""
    for run in runs:
        run.redis.start()
    hard_deadline = time.time() + args.duration + 120  # children stop on their own then
    for run in runs:
        run.start_receivers(hard_deadline + args.drain)
    for run in runs:
        run.locals = {name: child.ready(30)["local"] for name, child in run.receivers.items()}
        run.start_senders(hard_deadline, args)
    for run in runs:
        for child in run.senders.values():
            child.ready(30)
    started = time.time()
    print(f"soak started: {', '.join(run.key for run in runs)}; {args.duration:.0f} s", flush=True)
    for fraction in (1 / 3, 2 / 3):
        sleep_until(started + args.duration * fraction)
        killed = [run.crash() for run in runs]
        time.sleep(args.down)
        for run, moment in zip(runs, killed, strict=True):
            run.recover(moment, args)
        print(f"redis restarted at {time.time() - started:.1f} s", flush=True)
    sleep_until(started + args.duration)
    for run in runs:
        run.stop(run.senders, args.outage_timeout + 20)
    print(f"senders stopped; draining {args.drain:.0f} s", flush=True)
    time.sleep(args.drain)
    for run in runs:
        run.stop(run.receivers, 20)
        run.save(started)
    return started


# Counting ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What one layer did with what was sent; times are seconds into the run."""

    sends: Counter[str] = field(default_factory=Counter)
    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failed_delivered: int = 0
    lost_outage: int = 0
    lost_outside: Counter[str] = field(default_factory=Counter)
    first_loss: float | None = None
    slowest_send: float = 0.0
    after_expected: int = 0
    after_delivered: int = 0
    stray: int = 0
    last_receipt: dict[str, float] = field(default_factory=dict)
    receiver_stats: Counter[str] = field(default_factory=Counter)
    receive_errors: Counter[str] = field(default_factory=Counter)


def load_records(path: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    """A child's record lines, and its closing summary line (a dict) if it wrote one."""
    rows: list[list[Any]] = []
    summary: dict[str, Any] = {}
    if not path.exists():
        return rows, summary
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed child
            continue
        if isinstance(item, dict):
            summary = item
        else:
            rows.append(item)
    return rows, summary


def load_receipts(run: LayerRun, started: float, tally: Tally) -> Counter[tuple[str, int, str]]:
    """How often each (sender, seq, channel) was received; fills the receivers' rows."""
    receipts: Counter[tuple[str, int, str]] = Counter()
    for child in run.receivers.values():
        rows, summary = load_records(child.records)
        for sender, seq, channel, received in rows:
            receipts[sender, seq, channel] += 1
            last = tally.last_receipt.get(channel, 0.0)
            tally.last_receipt[channel] = max(last, received - started)
        tally.receiver_stats.update(summary.get("stats", {}))
        tally.receive_errors.update(summary.get("receive_errors", {}))
    return receipts


def overlaps(windows: Iterable[Window], start: float, end: float) -> bool:
    return any(window.start <= end and start <= window.end for window in windows)


def analyse(run: LayerRun, started: float) -> Tally:
    tally = Tally()
    receipts = load_receipts(run, started, tally)
    members = [run.locals[name] for name in RECEIVERS]
    recovered = max((window.end for window in run.windows), default=started)
    matched: set[tuple[str, int, str]] = set()
    for sender, child in run.senders.items():
        for seq, kind, target, sent, done, outcome in load_records(child.records)[0]:
            tally.sends[kind] += 1
            keys = [
                (sender, seq, channel) for channel in (members if kind == "group" else [target])
            ]
            matched.update(keys)
            tally.duplicates += sum(max(0, receipts[key] - 1) for key in keys)
            in_outage = overlaps(run.windows, sent, done)
            if not in_outage:
                tally.slowest_send = max(tally.slowest_send, done - sent)
            if outcome != "ok":
                (tally.refused if outcome in REFUSED else tally.failed)[outcome] += 1
                tally.failed_delivered += sum(1 for key in keys if receipts[key])
                continue
            count_expected(
                tally,
                keys,
                receipts,
                kind,
                sent - started,
                sent > recovered,
                in_outage,
            )
    tally.stray = sum(count for key, count in receipts.items() if key not in matched)
    return tally


def count_expected(
    tally: Tally,
    keys: list[tuple[str, int, str]],
    receipts: Counter[tuple[str, int, str]],
    kind: str,
    at: float,
    after_recovery: bool,
    in_outage: bool,
) -> None:
    """Count the deliveries one successful send promised."""
    for key in keys:
        tally.expected += 1
        tally.after_expected += after_recovery
        if receipts[key]:
            tally.delivered += 1
            tally.after_delivered += after_recovery
        elif in_outage:
            tally.lost_outage += 1
        else:
            tally.lost_outside[kind] += 1
            tally.first_loss = at if tally.first_loss is None else min(tally.first_loss, at)


# Reporting ---------------------------------------------------------------------------


def by_kind(counts: Counter[str]) -> str:
    return f"{counts.total():,} ({' / '.join(f'{counts[kind]:,}' for kind in KINDS)})"


def outcomes(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items())) or "0"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table_rows(run: LayerRun, tally: Tally, started: float) -> list[tuple[str, str]]:
    channels = [
        channel for name in RECEIVERS for channel in (run.locals[name], normal_channel(name))
    ]
    stats = tally.receiver_stats
    windows = ", ".join(
        f"{w.killed - started:.1f}→{w.answering - started:.1f}" for w in run.windows
    )
    after = tally.after_expected
    return [
        ("sends (group_send / send local / send normal)", by_kind(tally.sends)),
        ("expected deliveries (send returned; a group_send counts 2)", f"{tally.expected:,}"),
        ("delivered", f"{tally.delivered:,}"),
        ("duplicates", f"{tally.duplicates:,}"),
        ("refused: the send raised (calls)", outcomes(tally.refused)),
        ("other failed sends: timeout, other error (calls)", outcomes(tally.failed)),
        ("raised, yet delivered (deliveries)", f"{tally.failed_delivered:,}"),
        ("lost during outages", f"{tally.lost_outage:,}"),
        ("**lost outside outages** (group / local / normal)", by_kind(tally.lost_outside)),
        ("first loss outside outages (s into the run)", seconds(tally.first_loss)),
        ("slowest send call outside outages (ms)", f"{tally.slowest_send * 1000:,.0f}"),
        (
            "sent after the last recovery: delivered / expected",
            f"{tally.after_delivered:,} / {after:,}"
            + (f" ({tally.after_delivered / after:.1%})" if after else ""),
        ),
        ("stray receipts (unknown message or wrong channel)", f"{tally.stray:,}"),
        (
            "last receipt, s (R1 local / R1 normal / R2 local / R2 normal)",
            " / ".join(seconds(tally.last_receipt.get(channel)) for channel in channels),
        ),
        (
            "receivers' layer stats: reconnects / dropped_full / expired",
            f"{stats['reconnects']:,} / {stats['dropped_full']:,} / {stats['expired']:,}",
        ),
        ("receive errors", outcomes(tally.receive_errors)),
        ("Redis killed → answering PING, s into the run", windows),
        (
            "every process stopped cleanly",
            "yes"
            if all(run.clean.values())
            else "no: " + ", ".join(name for name, clean in run.clean.items() if not clean),
        ),
    ]


def report(
    runs: list[LayerRun], tallies: list[Tally], started: float, args: argparse.Namespace
) -> str:
    rows = [table_rows(run, tally, started) for run, tally in zip(runs, tallies, strict=True)]
    command = " ".join([".venv/bin/python bench/layers/soak.py", *sys.argv[1:]])
    lines = [
        f"Command: `{command}`; {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; {args.duration:.0f} s, {args.rate:g} msg/s per sender, "
        f"Redis down {args.down:g} s per restart, window = kill - {args.lead:g} s "
        f"… PING + {args.grace:g} s, drain {args.drain:g} s.",
        "",
        "| measure | "
        + " | ".join(f"`{LAYERS[run.key].rpartition('.')[2]}`" for run in runs)
        + " |",
        "|---" + "|---:" * len(runs) + "|",
    ]
    for index, (label, _) in enumerate(rows[0]):
        lines.append(f"| {label} | " + " | ".join(row[index][1] for row in rows) + " |")
    return "\n".join(lines) + "\n"


def log_summary(run: LayerRun) -> list[str]:
    """The commonest warnings each child logged (numbers and ids blanked)."""
    lines = []
    for child in [*run.receivers.values(), *run.senders.values()]:
        shapes: Counter[str] = Counter()
        for line in child.log.read_text(errors="replace").splitlines():
            match = re.search(r" (WARNING|ERROR|CRITICAL) \S+: (.*)", line)
            if match:
                shapes[re.sub(r"[0-9a-f]{12,}|\d+", "#", match.group(2))[:160]] += 1
        for shape, count in shapes.most_common(3):
            lines.append(f"  {run.key} {child.name}: {count:,}x {shape}")
    return lines


def write_results(path: Path, block: str) -> None:
    """Put ``block`` between the soak marks of ``path``, or append it with them."""
    text = path.read_text() if path.exists() else ""
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1]
        text = f"{head}{START_MARK}\n{block}{END_MARK}{tail}"
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + "## Soak\n\n"
        text += f"{START_MARK}\n{block}{END_MARK}\n"
    path.write_text(text)


def failed(tally: Tally) -> bool:
    return bool(tally.lost_outside.total() or tally.duplicates or tally.stray)


# Entry point -------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    parser.add_argument("--layer", choices=["core", "pubsub", "both"], default="both")
    parser.add_argument("--rate", type=float, default=200, help="messages/s per sender (200)")
    parser.add_argument(
        "--outage-timeout", type=float, default=5, help="the layers' outage_timeout (5)"
    )
    parser.add_argument("--capacity", type=int, help="the layer's capacity (default: its own)")
    parser.add_argument("--down", type=float, default=1, help="seconds Redis stays down (1)")
    parser.add_argument("--lead", type=float, default=1, help="window opens before a kill (1)")
    parser.add_argument("--grace", type=float, default=3, help="window stays after PING (3)")
    parser.add_argument("--drain", type=float, default=5, help="seconds receivers get after (5)")
    parser.add_argument("--out", type=Path, help="write the table into this results file")
    parser.add_argument("--keep", action="store_true", help="keep the records and logs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    args = parse_args()
    if args.child:
        child_main(args.child)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    runs: list[LayerRun] = []
    try:
        keys = list(LAYERS) if args.layer == "both" else [args.layer]
        runs = [LayerRun(key, args, workdir) for key in keys]
        started = soak(runs, args)
        tallies = [analyse(run, started) for run in runs]
    except BaseException:
        print(f"soak failed; records and logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        for run in runs:
            run.kill_everything()
    text = report(runs, tallies, started, args)
    print(text)
    print("Warnings logged by the processes (commonest first):")
    print("\n".join(line for run in runs for line in log_summary(run)) or "  none")
    if args.keep:
        print(f"records and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        write_results(args.out, text)
    return 1 if any(failed(tally) for tally in tallies) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
