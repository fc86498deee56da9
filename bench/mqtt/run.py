"""MQTT benchmark: one burst of QoS 0 messages from many devices, several subscribers.

    .venv/bin/python -m bench.mqtt.run [--messages 20000] [--devices 50]

Against the Mosquitto on 127.0.0.1:1883, in ONE run, for each subject in turn (see
bench/mqtt/subjects.py): start it, wait until it is subscribed, publish the burst
(``--devices`` paho clients, round-robin, as fast as they go), and collect what it
received: messages/s (received / time from the first publish to the last receipt),
end-to-end latency p50/p99 (publisher clock to handler, CLOCK_MONOTONIC), and per-device
order violations. Prints a Markdown table with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.mqtt.subjects import GROUP_CHANNELS

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = ["paho", "gateway", "gateway-redis", "mqttasgi"]


def publish_burst(prefix: str, devices: int, messages: int, port: int) -> int:
    clients = []
    for n in range(devices):
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub{n}")
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients.append(client)
    start = time.monotonic_ns()
    per_device = messages // devices
    for seq in range(per_device):
        for n, client in enumerate(clients):
            client.publish(f"{prefix}/d{n}/t", f"d{n},{seq},{time.monotonic_ns()}", 0)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return start


def run_subject(subject: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.mqtt.settings",
        "BENCH_LAYER": {"gateway": "memory", "gateway-redis": "redis"}.get(subject, "none"),
        "BENCH_PREFIX": prefix.replace("/", "-"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.mqtt.subjects",
            subject,
            prefix,
            str(args.messages),
            str(args.port),
            str(args.deadline),
        ],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "READY":
        process.kill()
        raise RuntimeError(f"{subject} did not start")
    start = publish_burst(prefix, args.devices, args.messages, args.port)
    result = json.loads(process.stdout.readline())
    process.wait(timeout=10)
    elapsed = max(result["last_ns"] - start, 1) / 1e9
    fanout = GROUP_CHANNELS if subject == "gateway-redis" else 1  # deliveries per message
    deliveries = args.messages * fanout
    result["rate"] = result["received"] / elapsed / fanout
    result["complete"] = result["received"] >= deliveries
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds per subject")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    args = parser.parse_args()
    results = {subject: run_subject(subject, args) for subject in args.subjects.split(",")}
    ceiling = results.get("paho", {}).get("rate")
    anchor = results.get("mqttasgi", {}).get("rate")
    print(f"\n{args.messages} QoS 0 messages from {args.devices} devices via Mosquitto\n")
    print(
        "| subject | msgs/s | p50 ms | p99 ms | received | order violations "
        "| vs paho | vs mqttasgi |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for subject, r in results.items():
        vs_paho = f"{r['rate'] / ceiling:.0%}" if ceiling else "-"
        vs_anchor = f"{r['rate'] / anchor:.0f}x" if anchor else "-"
        print(
            f"| {subject} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['received']:,}{'' if r['complete'] else ' (deadline)'} "
            f"| {r['out_of_order']} | {vs_paho} | {vs_anchor} |"
        )


if __name__ == "__main__":
    main()
