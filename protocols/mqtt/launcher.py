"""``gateway mqtt``: the command-line face of :class:`MqttServer` (a gateway.cli.Launcher).

Bridge role when ``--url`` or ``MQTT_URL`` names a broker, else the embedded broker
listening on ``--host``/``--port`` (``--mqtt-host``/``--mqtt-port`` under
``gateway run``, where ``--host``/``--port`` belong to the web server).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Any

from django.conf import settings

from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.link import Link
from protocols.mqtt.server import MqttServer

HELP = "serve MQTT devices: bridge to MQTT_URL, or run the embedded broker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    url_help = (
        "broker to bridge to, mqtt[s]://user:pass@host:port?options "
        "(default: $MQTT_URL; unset: run the embedded broker)"
    )
    add("--mqtt-url", dest="mqtt_url", default=None, help=url_help)
    add("--mqtt-host", dest="mqtt_host", default="0.0.0.0", help="embedded broker address")
    add("--mqtt-port", dest="mqtt_port", type=int, default=1883, help="embedded broker port")
    if isinstance(parser, argparse.ArgumentParser):
        # `gateway mqtt` only: under `gateway run` these names belong to other servers.
        add("--url", dest="mqtt_url", default=None, help=url_help)
        add("--host", dest="mqtt_host", default="0.0.0.0", help="embedded broker address")
        add("--port", dest="mqtt_port", type=int, default=1883, help="embedded broker port")
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
    add("--mqtt-share", default=None, help="bridge: subscribe as $share/<GROUP>/<filter>")
    add("--mqtt-idle-timeout", type=float, default=300.0, help="seconds before an idle scope ends")
    add("--mqtt-max-instances", type=int, default=10_000, help="live scopes before LRU eviction")
    add("--mqtt-queue-size", type=int, default=100, help="events queued per scope")
    add("--mqtt-inflight", type=int, default=1000, help="received, not yet queued, messages")


def wanted(application: Any, args: argparse.Namespace) -> bool:
    mapping = getattr(application, "application_mapping", None)
    return isinstance(mapping, dict) and "mqtt" in mapping


def link_from_args(args: argparse.Namespace) -> Link:
    url = args.mqtt_url or getattr(settings, "MQTT_URL", None) or os.environ.get("MQTT_URL")
    if url:
        config = BridgeConfig.from_url(url)
        if args.mqtt_share:
            config = dataclasses.replace(config, share_group=args.mqtt_share)
        return BridgeLink(config)
    return BrokerLink(
        args.mqtt_host,
        args.mqtt_port,
        ws_port=args.mqtt_ws_port,
        allow_anonymous=args.mqtt_anonymous,
    )


def build(application: Any, args: argparse.Namespace) -> MqttServer:
    # amqtt's state machines (the `transitions` package) log every state change at INFO.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    return MqttServer(
        application,
        link_from_args(args),
        idle_timeout=args.mqtt_idle_timeout,
        max_instances=args.mqtt_max_instances,
        queue_size=args.mqtt_queue_size,
        inflight=args.mqtt_inflight,
    )
