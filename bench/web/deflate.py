"""permessage-deflate settings, measured: ``.venv/bin/python -m bench.web.deflate``.

For each way of running the server's side of permessage-deflate (RFC 7692), on three
kinds of dashboard traffic: bytes on the wire against the uncompressed message, CPU
per message sent (a compressor per message where there is no context takeover), and
the memory a socket holds between messages (its compressor and decompressor, as
tracemalloc sees zlib's allocations). Chooses docs/web.md's defaults.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib
from dataclasses import dataclass
from typing import Any

TAIL = b"\x00\x00\xff\xff"


def traffic() -> dict[str, list[bytes]]:
    """Three streams like the dashboard's: one reading, a readings batch, a traffic batch."""
    small, medium, large = [], [], []
    for seq in range(400):
        small.append(
            json.dumps(
                {
                    "type": "iot.device",
                    "device": f"boiler-{seq % 50}",
                    "online": True,
                    "last_seen": f"2026-12-04T03:{seq % 60:02d}:00Z",
                }
            ).encode()
        )
        medium.append(
            json.dumps(
                {
                    "type": "iot.readings",
                    "readings": [
                        {
                            "device": f"boiler-{i}",
                            "metric": "temperature",
                            "value": 20 + (seq + i) % 97 / 7,
                        }
                        for i in range(4)
                    ],
                }
            ).encode()
        )
        large.append(
            json.dumps(
                {
                    "type": "iot.traffic",
                    "dropped": 0,
                    "entries": [
                        {
                            "at": f"2026-12-04T03:40:{i % 60:02d}.{seq % 1000:03d}+00:00",
                            "protocol": "mqtt",
                            "direction": "in",
                            "device": f"boiler-{i}",
                            "topic": f"devices/boiler-{i}/telemetry",
                            "summary": json.dumps({"temp": 20 + (seq * i) % 13 / 3}),
                        }
                        for i in range(25)
                    ],
                }
            ).encode()
        )
    return {"small": small, "medium": medium, "large": large}


@dataclass(frozen=True)
class Setting:
    name: str
    takeover: bool
    wbits: int
    mem_level: int
    min_size: int = 0


SETTINGS = [
    Setting("context takeover, window 15, memLevel 8 (before)", True, 15, 8),
    Setting("context takeover, window 12, memLevel 5", True, 12, 5),
    Setting("no context takeover, window 15, memLevel 8", False, 15, 8),
    Setting("no context takeover, window 12, memLevel 5", False, 12, 5),
    Setting(
        "no context takeover, window 12, memLevel 5, only >= 128 B (chosen)", False, 12, 5, 128
    ),
]


def run(setting: Setting, messages: list[bytes]) -> tuple[float, float]:
    """(wire bytes / raw bytes, microseconds per message)."""
    encoder: Any = None
    out = 0
    start = time.perf_counter()
    for data in messages:
        if len(data) < setting.min_size:
            out += len(data)
            continue
        if encoder is None or not setting.takeover:
            encoder = zlib.compressobj(wbits=-setting.wbits, memLevel=setting.mem_level)
        out += len(encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)) - 4
    elapsed = time.perf_counter() - start
    return out / sum(len(m) for m in messages), elapsed / len(messages) * 1e6


def idle_bytes(setting: Setting, count: int = 200) -> float:
    """Bytes a socket keeps between messages for its compressor and decompressor."""
    if not setting.takeover:
        return 0.0  # both are created per message and dropped at its end
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = []
    for _ in range(count):
        encoder = zlib.compressobj(wbits=-setting.wbits, memLevel=setting.mem_level)
        decoder = zlib.decompressobj(wbits=-15)  # the client's window: browsers use 15
        payload = encoder.compress(b"x" * 300) + encoder.flush(zlib.Z_SYNC_FLUSH)
        decoder.decompress(payload)
        held.append((encoder, decoder))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def main() -> None:
    streams = traffic()
    sizes = {k: sum(map(len, v)) / len(v) for k, v in streams.items()}
    print(
        "| setting | KiB held per idle socket | "
        + " | ".join(f"{k} ({sizes[k]:.0f} B): wire / raw, us per msg" for k in streams)
        + " |"
    )
    print("|---|---:|" + "---:|" * len(streams))
    for setting in SETTINGS:
        cells = []
        for messages in streams.values():
            best = min((run(setting, messages) for _ in range(5)), key=lambda r: r[1])
            cells.append(f"{best[0]:.2f}, {best[1]:.1f}")
        print(f"| {setting.name} | {idle_bytes(setting) / 1024:.1f} | " + " | ".join(cells) + " |")
    print("| no compression | 0 | " + " | ".join("1.00, 0" for _ in streams) + " |")


if __name__ == "__main__":
    main()
