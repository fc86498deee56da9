"""``gateway mqtt``: the command-line face of :class:`MqttServer` (a protocols.launch.Launcher).

Bridge role when ``--url`` or ``MQTT_URL`` names a broker, else the embedded broker
listening on ``--host``/``--port`` (``--mqtt-host``/``--mqtt-port`` under
``gateway run``, where ``--host``/``--port`` belong to the web server): 127.0.0.1
unless told otherwise, like the web server (docs/security.md). The embedded
broker's limits and TLS files are options whose defaults come from the settings (or
environment variables) named in their help, read when the server is built
(:class:`MqttOptions` leaves them None).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from gateway.conf import setting
from gateway.devices.authenticator import DeviceAuthenticator, SlowLane, default_slow_workers
from gateway.devices.limits import SourceLimits
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.door import DoorLimits
from protocols.mqtt.link import Link
from protocols.mqtt.listeners import TLSFiles
from protocols.mqtt.server import MqttServer

HELP = "serve MQTT devices: bridge to MQTT_URL, or run the embedded broker"

T = TypeVar("T", int, float)
_LIMITS = DoorLimits()


@dataclass(frozen=True)
class MqttOptions:
    """The MQTT server's options, one field per ``gateway mqtt`` flag (defaults alike).

    None, for the embedded broker's limits and TLS files: the setting (or
    environment variable) named in the flag's help, else the built-in default.
    """

    mqtt_url: str | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_ws_port: int | None = None
    mqtt_anonymous: bool = False
    mqtt_ssl_certfile: str | None = None
    mqtt_ssl_keyfile: str | None = None
    mqtt_tls_port: int = 8883
    mqtt_wss_port: int | None = None
    mqtt_connect_timeout: float | None = None
    mqtt_max_connections: int | None = None
    mqtt_max_packet_size: int | None = None
    mqtt_auth_workers: int | None = None
    mqtt_auth_failures: int | None = None
    mqtt_share: str | None = None
    mqtt_idle_timeout: float = 300.0
    mqtt_max_instances: int = 10_000
    mqtt_queue_size: int = 100
    mqtt_inflight: int = 1000


OPTIONS = MqttOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    url_help = (
        "broker to bridge to, mqtt[s]://user:pass@host:port?options "
        "(default: $MQTT_URL; unset: run the embedded broker)"
    )
    add("--mqtt-url", dest="mqtt_url", default=None, help=url_help)
    host_help = "embedded broker address (default: %(default)s; 0.0.0.0: every interface)"
    port_help = "embedded broker port, plain MQTT (default: %(default)s)"
    add("--mqtt-host", dest="mqtt_host", default="127.0.0.1", help=host_help)
    add("--mqtt-port", dest="mqtt_port", type=int, default=1883, help=port_help)
    if isinstance(parser, argparse.ArgumentParser):
        # `gateway mqtt` only: under `gateway run` these names belong to other servers.
        add("--url", dest="mqtt_url", default=None, help=url_help)
        add("--host", dest="mqtt_host", default="127.0.0.1", help=host_help)
        add("--port", dest="mqtt_port", type=int, default=1883, help=port_help)
    add(
        "--mqtt-ws-port",
        type=int,
        default=None,
        help="also accept MQTT over WebSocket on this port (embedded broker)",
    )
    add(
        "--mqtt-anonymous",
        action="store_true",
        default=os.environ.get("MQTT_ALLOW_ANONYMOUS", "") in ("1", "true", "yes"),
        help="let devices without credentials connect and use any topic (embedded broker; "
        "default: $MQTT_ALLOW_ANONYMOUS, off)",
    )
    add_broker_arguments(add)
    add("--mqtt-share", default=None, help="bridge: subscribe as $share/<GROUP>/<filter>")
    add("--mqtt-idle-timeout", type=float, default=300.0, help="seconds before an idle scope ends")
    add("--mqtt-max-instances", type=int, default=10_000, help="live scopes before LRU eviction")
    add("--mqtt-queue-size", type=int, default=100, help="events queued per scope")
    add("--mqtt-inflight", type=int, default=1000, help="received, not yet queued, messages")


def add_broker_arguments(add: Callable[..., Any]) -> None:
    """TLS and the limits of every connection to the embedded broker (docs/security.md)."""
    add(
        "--mqtt-ssl-certfile",
        default=None,
        help="embedded broker: TLS certificate chain (PEM); enables MQTT over TLS on "
        "--mqtt-tls-port (default: $MQTT_SSL_CERTFILE)",
    )
    add(
        "--mqtt-ssl-keyfile",
        default=None,
        help="embedded broker: TLS private key (PEM) (default: $MQTT_SSL_KEYFILE)",
    )
    add(
        "--mqtt-tls-port",
        type=int,
        default=8883,
        help="embedded broker: MQTT over TLS port, with a certificate (default: %(default)s)",
    )
    add(
        "--mqtt-wss-port",
        type=int,
        default=None,
        help="embedded broker: also MQTT over secure WebSocket on this port (needs the "
        "certificate; default: off)",
    )
    add(
        "--mqtt-connect-timeout",
        type=float,
        default=None,
        help="embedded broker: seconds from accept (TLS, WebSocket handshakes included) to "
        f"a complete CONNECT (default: $MQTT_CONNECT_TIMEOUT, {_LIMITS.connect_timeout:g})",
    )
    add(
        "--mqtt-max-connections",
        type=int,
        default=None,
        help="embedded broker: open connections on all listeners; more are closed at once "
        f"(default: $MQTT_MAX_CONNECTIONS, {_LIMITS.max_connections})",
    )
    add(
        "--mqtt-max-packet-size",
        type=int,
        default=None,
        help="embedded broker: largest packet in bytes (its remaining length); a larger one "
        f"closes the connection (default: $MQTT_MAX_PACKET_SIZE, {_LIMITS.max_packet_size})",
    )
    add(
        "--mqtt-auth-workers",
        type=int,
        default=None,
        help="embedded broker: threads for password (not token) checks (default: "
        "$MQTT_AUTH_WORKERS, one per CPU core but one)",
    )
    add(
        "--mqtt-auth-failures",
        type=int,
        default=None,
        help="embedded broker: failed logins allowed per client address per minute; past "
        "that its logins are refused unchecked (default: $MQTT_AUTH_FAILURES, 10)",
    )


def _configured(value: T | None, name: str, default: T, kind: Callable[[Any], T]) -> T:
    """The option if given, else setting (or environment variable) ``name``, else ``default``."""
    if value is not None:
        chosen = value
    else:
        raw = setting(name, default)
        try:
            chosen = kind(raw)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if chosen <= 0:
        raise ImproperlyConfigured(f"{name} (or its --mqtt-... option) must be positive")
    return chosen


def broker_link(options: MqttOptions) -> BrokerLink:
    limits = DoorLimits(
        connect_timeout=_configured(
            options.mqtt_connect_timeout, "MQTT_CONNECT_TIMEOUT", _LIMITS.connect_timeout, float
        ),
        max_connections=_configured(
            options.mqtt_max_connections, "MQTT_MAX_CONNECTIONS", _LIMITS.max_connections, int
        ),
        max_packet_size=_configured(
            options.mqtt_max_packet_size, "MQTT_MAX_PACKET_SIZE", _LIMITS.max_packet_size, int
        ),
    )
    workers = _configured(
        options.mqtt_auth_workers, "MQTT_AUTH_WORKERS", default_slow_workers(), int
    )
    failures = _configured(options.mqtt_auth_failures, "MQTT_AUTH_FAILURES", 10, int)
    authenticator = DeviceAuthenticator(SlowLane(workers), SourceLimits(failures))
    certfile = options.mqtt_ssl_certfile or setting("MQTT_SSL_CERTFILE")
    keyfile = options.mqtt_ssl_keyfile or setting("MQTT_SSL_KEYFILE")
    if (certfile is None) != (keyfile is None):
        raise ImproperlyConfigured(
            "the embedded MQTT broker needs both MQTT_SSL_CERTFILE and MQTT_SSL_KEYFILE "
            "(--mqtt-ssl-certfile, --mqtt-ssl-keyfile) for TLS"
        )
    tls = TLSFiles(certfile, keyfile) if certfile is not None and keyfile is not None else None
    return BrokerLink(
        options.mqtt_host,
        options.mqtt_port,
        ws_port=options.mqtt_ws_port,
        tls=tls,
        tls_port=options.mqtt_tls_port if tls is not None else None,
        wss_port=options.mqtt_wss_port,
        allow_anonymous=options.mqtt_anonymous,
        limits=limits,
        authenticator=authenticator,
    )


def wanted(application: Any, options: MqttOptions) -> bool:
    mapping = getattr(application, "application_mapping", None)
    return isinstance(mapping, dict) and "mqtt" in mapping


def mqtt_link(options: MqttOptions) -> Link:
    """The bridge to ``--mqtt-url`` (or ``MQTT_URL``), else the embedded broker."""
    url = options.mqtt_url or setting("MQTT_URL")
    if url:
        config = BridgeConfig.from_url(url)
        if options.mqtt_share:
            config = dataclasses.replace(config, share_group=options.mqtt_share)
        return BridgeLink(config)
    return broker_link(options)


def build(application: Any, options: MqttOptions) -> MqttServer:
    # amqtt's state machines (the `transitions` package) log every state change at INFO.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    return MqttServer(
        application,
        mqtt_link(options),
        idle_timeout=options.mqtt_idle_timeout,
        max_instances=options.mqtt_max_instances,
        queue_size=options.mqtt_queue_size,
        inflight=options.mqtt_inflight,
    )
