"""The process's counters in one registry, read when someone asks.

Interface servers, workers and channel layers already count what they do in plain
integer attributes: an attribute increment costs ~20 ns, a ``prometheus_client``
``Counter.inc`` ~260 ns (it takes a lock), more than the server's whole budget for
a small WebSocket message. So nothing here runs per message. A server *registers a
reader* (:meth:`MetricsRegistry.register`), a function returning its counters as a
:class:`ServerReading`, and the registry calls every reader only when asked:

- :meth:`MetricsRegistry.snapshot`, a JSON- and msgpack-safe dict of this process
  (what the health heartbeat publishes on the :data:`HEALTH_GROUP` group);
- :attr:`MetricsRegistry.prometheus`, a ``prometheus_client`` registry whose
  collector turns the same readings into the Prometheus text format at scrape time
  (``prometheus_client.generate_latest(registry.prometheus)``).

Channel layers need no registration: the registry reads the layers this process has
built (:data:`gateway.layers.channel_layers`) and their :class:`LayerStats`.

Readers run on the event loop thread that owns the counters (scrapes are served by
async views and the heartbeat runs on that loop), so they may walk the server's
live structures without locks.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

import gateway
from gateway.layers.stats import LayerStats

__all__ = [
    "HEALTH_GROUP",
    "HEALTH_INTERVAL",
    "HEALTH_TYPE",
    "MetricsRegistry",
    "ProcessInfo",
    "ProtocolCounters",
    "ServerReading",
    "health_event",
    "registry",
]

#: The channel-layer group every gateway process publishes its snapshot to.
HEALTH_GROUP = "gateway.health"
#: The ``type`` of those messages (handled by ``gateway_health`` in consumers).
HEALTH_TYPE = "gateway.health"
#: Seconds between two of them, by default.
HEALTH_INTERVAL = 2.0


@dataclass(frozen=True)
class ProtocolCounters:
    """One protocol as one server sees it."""

    #: Open now: sockets, devices connected to the embedded broker, conversations.
    connections: int = 0
    #: Since the server started: messages from clients, and to them.
    messages_in: int = 0
    messages_out: int = 0

    def __add__(self, other: ProtocolCounters) -> ProtocolCounters:
        return ProtocolCounters(
            self.connections + other.connections,
            self.messages_in + other.messages_in,
            self.messages_out + other.messages_out,
        )


@dataclass(frozen=True)
class ServerReading:
    """What one server (``web``, ``mqtt``, ``telegram``, ``worker``) reports now."""

    protocols: Mapping[str, ProtocolCounters] = field(default_factory=dict)
    #: Live application instances (scopes being served).
    instances: int = 0
    #: For a server that depends on a link (the MQTT bridge): whether it is up.
    link_up: bool | None = None

    def __add__(self, other: ServerReading) -> ServerReading:
        protocols = dict(self.protocols)
        for name, counters in other.protocols.items():
            protocols[name] = protocols.get(name, ProtocolCounters()) + counters
        links = [up for up in (self.link_up, other.link_up) if up is not None]
        link_up = all(links) if links else None
        return ServerReading(protocols, self.instances + other.instances, link_up)


Reader = Callable[[], ServerReading]

#: The help text of each :class:`LayerStats` counter (``gateway_layer_<name>_total``).
LAYER_HELP = {
    "sent": "Messages delivered to channels, group members included.",
    "received": "Messages received from channels.",
    "group_sent": "group_send calls.",
    "expired": "Messages discarded unread after the layer's expiry.",
    "dropped_full": "Messages refused or skipped because a channel was at capacity.",
    "reconnects": "Reconnections to the layer's backend.",
    "unavailable": "Messages not sent because the backend stayed unreachable.",
}


@dataclass(frozen=True)
class ProcessInfo:
    """Who this process is, as dashboards and ``gateway_info`` show it."""

    #: Unique per process run (pids repeat across containers and restarts).
    id: str
    #: The ``gateway`` subcommand it runs (``run``, ``web``, ``mqtt`` ...), else ``python``.
    kind: str
    pid: int
    host: str
    #: Wall-clock start time, seconds since the epoch (for display only).
    started: float


class MetricsRegistry:
    """The counters of this process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = ProcessInfo(
            id=uuid.uuid4().hex[:12],
            kind="python",
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
        )
        self._clock = clock
        self._started = clock()
        self._readers: dict[int, tuple[str, Reader]] = {}
        self._keys = itertools.count()
        self.prometheus = CollectorRegistry(auto_describe=False)
        self.prometheus.register(_GatewayCollector(self))
        for standard in (ProcessCollector, PlatformCollector, GCCollector):
            standard(registry=self.prometheus)

    def identify(self, kind: str) -> None:
        """Name what this process runs (the launcher calls this once)."""
        self.process = dataclasses.replace(self.process, kind=kind)

    def uptime(self) -> float:
        return self._clock() - self._started

    def register(self, server: str, reader: Reader) -> Callable[[], None]:
        """Read ``reader`` as part of ``server`` from now on; returns the unregister call.

        Several servers of one name in a process (tests start many) add up.
        """
        key = next(self._keys)
        self._readers[key] = (server, reader)

        def unregister() -> None:
            self._readers.pop(key, None)

        return unregister

    def servers(self) -> dict[str, ServerReading]:
        """Every registered server's reading now, summed by server name."""
        readings: dict[str, ServerReading] = {}
        for server, reader in list(self._readers.values()):
            reading = reader()
            readings[server] = readings[server] + reading if server in readings else reading
        return readings

    @staticmethod
    def layers() -> dict[str, tuple[str, LayerStats]]:
        """The channel layers this process has built: alias -> (backend class, stats)."""
        from gateway.layers import channel_layers

        return {
            alias: (type(layer).__name__, layer.stats)
            for alias, layer in list(channel_layers.backends.items())
        }

    def snapshot(self) -> dict[str, Any]:
        """This process now, as plain JSON/msgpack-safe values (see docs/metrics.md)."""
        servers = self.servers()
        protocols: dict[str, ProtocolCounters] = {}
        for reading in servers.values():
            for name, counters in reading.protocols.items():
                protocols[name] = protocols.get(name, ProtocolCounters()) + counters
        process = self.process
        return {
            "id": process.id,
            "kind": process.kind,
            "pid": process.pid,
            "host": process.host,
            "started": datetime.fromtimestamp(process.started, UTC).isoformat(),
            "uptime": round(self.uptime(), 3),
            "protocols": {name: dataclasses.asdict(c) for name, c in sorted(protocols.items())},
            "servers": {
                name: {"instances": reading.instances, "link_up": reading.link_up}
                for name, reading in sorted(servers.items())
            },
            "layers": {
                alias: {"backend": backend, **stats.as_dict()}
                for alias, (backend, stats) in sorted(self.layers().items())
            },
        }


def health_event(snapshot: Mapping[str, Any], interval: float, state: str) -> dict[str, Any]:
    """The message a process sends to :data:`HEALTH_GROUP`.

    ``interval`` is how often it publishes (a dashboard forgets a process silent for
    a few intervals); ``state`` is ``running``, or ``stopped`` for its last message.
    """
    return {
        "type": HEALTH_TYPE,
        "interval": interval,
        "state": state,
        "process": dict(snapshot),
    }


class _GatewayCollector(Collector):
    """Turns the readings into Prometheus metric families at scrape time."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        registry = self.registry
        process = registry.process
        info = InfoMetricFamily("gateway", "This gateway process.")
        info.add_metric(
            [],
            {
                "id": process.id,
                "kind": process.kind,
                "host": process.host,
                "pid": str(process.pid),
                "version": gateway.__version__,
            },
        )
        yield info
        yield GaugeMetricFamily(
            "gateway_uptime_seconds", "Seconds since this process started.", registry.uptime()
        )
        yield from self._servers(registry.servers())
        yield from self._layers(registry.layers())

    @staticmethod
    def _servers(servers: Mapping[str, ServerReading]) -> Iterator[Any]:
        labels = ["server", "protocol"]
        connections = GaugeMetricFamily(
            "gateway_connections", "Connections open now, per server and protocol.", labels=labels
        )
        messages = CounterMetricFamily(
            "gateway_messages",
            "Messages since start, per server, protocol and direction (in: from clients).",
            labels=[*labels, "direction"],
        )
        instances = GaugeMetricFamily(
            "gateway_instances", "Live application instances, per server.", labels=["server"]
        )
        links = GaugeMetricFamily(
            "gateway_link_up", "1 while a server's upstream link is up.", labels=["server"]
        )
        for server, reading in sorted(servers.items()):
            for protocol, counters in sorted(reading.protocols.items()):
                connections.add_metric([server, protocol], counters.connections)
                messages.add_metric([server, protocol, "in"], counters.messages_in)
                messages.add_metric([server, protocol, "out"], counters.messages_out)
            instances.add_metric([server], reading.instances)
            if reading.link_up is not None:
                links.add_metric([server], int(reading.link_up))
        yield from (connections, messages, instances, links)

    @staticmethod
    def _layers(layers: Mapping[str, tuple[str, LayerStats]]) -> Iterator[Any]:
        families = {
            name: CounterMetricFamily(f"gateway_layer_{name}", text, labels=["layer", "backend"])
            for name, text in LAYER_HELP.items()
        }
        for alias, (backend, stats) in sorted(layers.items()):
            for name, value in stats.as_dict().items():
                families[name].add_metric([alias, backend], value)
        yield from families.values()


#: The registry of this process.
registry = MetricsRegistry()
