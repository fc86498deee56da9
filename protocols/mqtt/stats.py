"""The MQTT server's counters, written by its parts and read by logs, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MqttStats:
    """Counters since the server started (``/metrics`` reads them through ``reading()``)."""

    received: int = 0
    dispatched: int = 0
    unroutable: int = 0
    consumer_errors: int = 0
    published: int = 0
    publish_failures: int = 0
    bad_channel_messages: int = 0
    presence_events: int = 0
    max_pending: int = 0
    pauses: int = 0
