"""One benchmark subject per process: receive the burst, report latency and order as JSON.

``python -m bench.mqtt.subjects SUBJECT PREFIX EXPECT PORT DEADLINE`` prints ``READY``
once subscribed, then one JSON line when it has received EXPECT messages on
``PREFIX/<device>/t`` (payload ``device,seq,sent_ns``) or DEADLINE seconds passed.

Subjects: ``paho`` (a raw paho subscriber: the ceiling), ``gateway`` (this server,
bridge role, one consumer instance per device), ``gateway-redis`` (the same, each
message group_sent to 10 channels over the Redis layer and counted at the
receivers), ``mqttasgi`` (mqttasgi 2.0 serving an equivalent consumer).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

GROUP_CHANNELS = 10


class Recorder:
    """Latency and per-device order of what arrived; thread-safe enough (GIL, one writer)."""

    def __init__(self, expect: int, deadline: float) -> None:
        self.expect = expect
        self.latencies: list[int] = []
        self.last_seq: dict[str, int] = {}
        self.out_of_order = 0
        self.last_ns = 0
        self.done = threading.Event()
        self._timer = threading.Timer(deadline, self.finish)
        self._timer.daemon = True
        self._timer.start()
        self._lock = threading.Lock()
        self._finished = False

    def record(self, payload: bytes | str, stream: str = "") -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        device, seq_text, sent = text.split(",")
        now = time.monotonic_ns()
        seq = int(seq_text)
        key = stream + device
        if seq != self.last_seq.get(key, -1) + 1:
            self.out_of_order += 1
        self.last_seq[key] = seq
        self.latencies.append(now - int(sent))
        self.last_ns = now
        if len(self.latencies) >= self.expect:
            self.finish()

    def finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._timer.cancel()
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6 if ordered else 0.0

        result = {
            "received": len(ordered),
            "last_ns": self.last_ns,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "out_of_order": self.out_of_order,
        }
        print(json.dumps(result), flush=True)
        self.done.set()
        os._exit(0)


def ready() -> None:
    print("READY", flush=True)


def run_paho(prefix: str, recorder: Recorder, port: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: recorder.record(m.payload)
    client.on_subscribe = lambda *args: ready()
    client.on_connect = lambda c, *args: c.subscribe(f"{prefix}/+/t", 0)
    client.connect("127.0.0.1", port)
    client.loop_forever()


def run_gateway(prefix: str, recorder: Recorder, port: int, redis: bool) -> None:
    import django

    django.setup()
    from gateway.generic.mqtt import AsyncMqttConsumer
    from gateway.layers import get_channel_layer
    from gateway.routing import TopicRouter, topic
    from protocols.mqtt.bridge import BridgeLink
    from protocols.mqtt.config import BridgeConfig
    from protocols.mqtt.server import MqttServer

    group = f"{prefix.replace('/', '-')}-watchers"

    class Telemetry(AsyncMqttConsumer):
        async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
            if redis:
                assert self.channel_layer is not None
                await self.channel_layer.group_send(
                    group, {"type": "reading", "payload": payload.decode()}
                )
            else:
                recorder.record(payload)

    async def watcher(layer: Any, index: int, subscribed: asyncio.Event) -> None:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        subscribed.set()
        while True:
            message = await layer.receive(channel)
            recorder.record(message["payload"], stream=f"{index}:")

    async def main() -> None:
        application = TopicRouter([topic(f"{prefix}/<device_id>/t", Telemetry.as_asgi())])
        server = MqttServer(
            application, BridgeLink(BridgeConfig.from_url(f"mqtt://127.0.0.1:{port}"))
        )
        if redis:
            layer = get_channel_layer()
            events = [asyncio.Event() for _ in range(GROUP_CHANNELS)]
            watchers = [  # noqa: F841  (kept alive until the process exits)
                asyncio.create_task(watcher(layer, i, event)) for i, event in enumerate(events)
            ]
            await asyncio.gather(*(event.wait() for event in events))
        await server.start()
        ready()
        await asyncio.Event().wait()

    asyncio.run(main())


def run_mqttasgi(prefix: str, recorder: Recorder, port: int) -> None:
    import django

    django.setup()
    from mqttasgi.consumers import MqttConsumer
    from mqttasgi.server import Server

    class Telemetry(MqttConsumer):
        async def connect(self) -> None:
            await self.subscribe(f"{prefix}/+/t", 0)
            threading.Timer(1.0, ready).start()  # mqttasgi reports no SUBACK to consumers

        async def receive(self, mqtt_message: dict[str, Any]) -> None:
            recorder.record(mqtt_message["payload"])

    Server(Telemetry.as_asgi(), "127.0.0.1", port, client_id=f"mqttasgi-{os.getpid()}").run()


def main() -> None:
    subject, prefix, expect, port, deadline = sys.argv[1:6]
    expected = int(expect) * (GROUP_CHANNELS if subject == "gateway-redis" else 1)
    recorder = Recorder(expected, float(deadline))
    if subject == "paho":
        run_paho(prefix, recorder, int(port))
    elif subject in ("gateway", "gateway-redis"):
        run_gateway(prefix, recorder, int(port), redis=subject == "gateway-redis")
    elif subject == "mqttasgi":
        run_mqttasgi(prefix, recorder, int(port))
    else:
        raise SystemExit(f"unknown subject {subject!r}")


if __name__ == "__main__":
    main()
