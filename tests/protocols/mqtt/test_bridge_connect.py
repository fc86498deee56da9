"""protocols.mqtt.bridge_connect: the bridge's CONNECT settings and CONNACK verdicts."""

from __future__ import annotations

import ssl

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import ConnackCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from protocols.mqtt.bridge_connect import (
    SESSION_EXPIRY,
    Connack,
    client_settings,
    connect_settings,
    read_connack,
    tls_context,
)
from protocols.mqtt.config import BridgeConfig


def config(url: str) -> BridgeConfig:
    return BridgeConfig.from_url(url)


@pytest.mark.parametrize(
    ("url", "version", "protocol", "clean_session"),
    [
        ("mqtt://b", "5.0", paho.MQTTv5, None),  # 5.0 decides at connect (clean start)
        ("mqtt://b", "3.1.1", paho.MQTTv311, True),
        ("mqtt://b?client_id=gw", "3.1.1", paho.MQTTv311, False),  # persistent session
    ],
)
def test_client_settings(url: str, version: str, protocol: int, clean_session: bool | None) -> None:
    assert client_settings(config(url), version) == {
        "protocol": protocol,
        "clean_session": clean_session,
    }


def test_a_client_id_asks_for_a_persistent_session_in_mqtt_5() -> None:
    settings = connect_settings(config("mqtt://b?client_id=gw&keepalive=12"), "5.0")
    assert settings["keepalive"] == 12
    assert settings["clean_start"] is False
    assert settings["properties"].SessionExpiryInterval == SESSION_EXPIRY


def test_without_a_client_id_every_connection_starts_clean() -> None:
    assert connect_settings(config("mqtt://b"), "5.0") == {
        "keepalive": 30,
        "clean_start": True,
        "properties": None,
    }


def test_mqtt_3_1_1_leaves_the_session_to_the_client_settings() -> None:
    settings = connect_settings(config("mqtt://b?client_id=gw"), "3.1.1")
    assert settings["clean_start"] == paho.MQTT_CLEAN_START_FIRST_ONLY
    assert settings["properties"] is None


def test_tls_context_only_for_tls_and_without_hostname_check_when_insecure() -> None:
    assert tls_context(config("mqtt://b")) is None
    strict = tls_context(config("mqtts://b"))
    assert strict is not None
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    loose = tls_context(config("mqtts://b?insecure=1"))
    assert loose is not None
    assert (loose.verify_mode, loose.check_hostname) == (ssl.CERT_REQUIRED, False)


def connack(value: int) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, identifier=value)


@pytest.mark.parametrize(
    ("reason", "version", "verdict"),
    [
        (connack(0x00), "5.0", Connack.ACCEPTED),
        (connack(0x84), "5.0", Connack.OLDER_VERSION),
        (connack(0x84), "3.1.1", Connack.REFUSED),  # nothing older to fall back to
        (connack(0x86), "5.0", Connack.BAD_CREDENTIALS),
        (connack(0x87), "5.0", Connack.BAD_CREDENTIALS),
        (connack(0x88), "5.0", Connack.REFUSED),  # server unavailable: retried
        # A 3.1.1 broker's return codes, as paho hands them over.
        (paho.convert_connack_rc_to_reason_code(ConnackCode(1)), "5.0", Connack.OLDER_VERSION),
        (
            paho.convert_connack_rc_to_reason_code(ConnackCode(4)),
            "3.1.1",
            Connack.BAD_CREDENTIALS,
        ),
        (paho.convert_connack_rc_to_reason_code(ConnackCode(3)), "3.1.1", Connack.REFUSED),
    ],
)
def test_read_connack(reason: ReasonCode, version: str, verdict: Connack) -> None:
    assert read_connack(reason, version) is verdict
