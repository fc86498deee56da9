"""What the bridge asks for at CONNECT, and how it reads the CONNACK: pure, no I/O.

Session: a configured ``client_id`` asks for a persistent session, so the QoS 1/2
messages published while the bridge is away wait at the broker (MQTT 3.1.1: clean
session 0, §3.1.2.4; MQTT 5.0: clean start 0 and a Session Expiry Interval of an
hour, 5.0 §3.1.2.4 and §3.1.2.11.2). Without one, every connection starts clean.

CONNACK: a broker that refuses the protocol version makes a 5.0 bridge fall back to
3.1.1 (3.1.1 §3.2.2.3, 5.0 §3.2.2.2); refused credentials are a configuration
error, not a reason to retry for ever; any other refusal is retried with backoff.
"""

from __future__ import annotations

import enum
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.mqtt.codes import ConnackReason, ReturnCode
from protocols.mqtt.config import BridgeConfig

#: Seconds a persistent MQTT 5.0 session outlives the connection (5.0 §3.1.2.11.2).
SESSION_EXPIRY = 3600

#: CONNACK refusals of the protocol version: 3.1.1 and 5.0 (fall back to 3.1.1).
_WRONG_VERSION = frozenset(
    {ReturnCode.UNACCEPTABLE_PROTOCOL_VERSION, ConnackReason.UNSUPPORTED_PROTOCOL_VERSION}
)
#: CONNACK refusals of the credentials, 3.1.1 and 5.0 (a PermissionError).
_BAD_CREDENTIALS = frozenset(
    {
        ReturnCode.BAD_USERNAME_OR_PASSWORD,
        ReturnCode.NOT_AUTHORIZED,
        ConnackReason.BAD_USERNAME_OR_PASSWORD,
        ConnackReason.NOT_AUTHORIZED,
    }
)


def client_settings(config: BridgeConfig, version: str) -> dict[str, Any]:
    """The protocol and session arguments of ``paho.Client`` for ``version``."""
    v5 = version == "5.0"
    return {
        "protocol": paho.MQTTv5 if v5 else paho.MQTTv311,
        "clean_session": None if v5 else config.client_id is None,
    }


def connect_settings(config: BridgeConfig, version: str) -> dict[str, Any]:
    """The arguments of ``paho.Client.connect`` besides the address."""
    properties = None
    if version == "5.0" and config.client_id is not None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY
    return {
        "keepalive": config.keepalive,
        "clean_start": (
            config.client_id is None if version == "5.0" else paho.MQTT_CLEAN_START_FIRST_ONLY
        ),
        "properties": properties,
    }


def tls_context(config: BridgeConfig) -> ssl.SSLContext | None:
    """The TLS context for ``mqtts://`` (None: plain TCP): the CA bundle, the client
    certificate, and no hostname check when ``insecure``."""
    if not config.tls:
        return None
    context = ssl.create_default_context(cafile=config.ca_certs)
    if config.certfile:
        context.load_cert_chain(config.certfile, config.keyfile)
    if config.insecure:
        context.check_hostname = False
    return context


class Connack(enum.Enum):
    """What a CONNACK means for the bridge."""

    ACCEPTED = "accepted"
    #: The broker refused MQTT 5.0: connect again speaking 3.1.1.
    OLDER_VERSION = "retry with MQTT 3.1.1"
    #: The broker refused the credentials: a configuration error.
    BAD_CREDENTIALS = "bad credentials"
    #: Any other refusal (server unavailable, ...): retry with backoff.
    REFUSED = "refused"


def read_connack(reason: ReasonCode, version: str) -> Connack:
    """Classify the CONNACK ``reason`` a bridge speaking ``version`` received."""
    if not reason.is_failure:
        return Connack.ACCEPTED
    if reason.value in _WRONG_VERSION and version == "5.0":
        return Connack.OLDER_VERSION
    if reason.value in _BAD_CREDENTIALS:
        return Connack.BAD_CREDENTIALS
    return Connack.REFUSED
