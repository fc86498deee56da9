"""protocols.mqtt.config: MQTT_URL read into a bridge configuration, refused naming the setting."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from protocols.mqtt.config import BridgeConfig


def test_bridge_config_from_url() -> None:
    config = BridgeConfig.from_url(
        "mqtts://dev%40x:s3cret@broker.example:8884/?client_id=gw1&version=3.1.1"
        "&keepalive=10&share=workers&ca=/ca.pem&cert=/c.pem&key=/k.pem"
    )
    assert config == BridgeConfig(
        host="broker.example",
        port=8884,
        tls=True,
        username="dev@x",
        password="s3cret",
        client_id="gw1",
        version="3.1.1",
        keepalive=10,
        share_group="workers",
        ca_certs="/ca.pem",
        certfile="/c.pem",
        keyfile="/k.pem",
    )
    assert "s3cret" not in config.safe_url()
    assert BridgeConfig.from_url("mqtt://h").port == 1883
    assert BridgeConfig.from_url("mqtts://h").port == 8883


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "mqtt://",
        "mqtt://h:99999",
        "mqtt://h?version=4.0",
        "mqtt://h?keepalive=x",
        "mqtt://h?cert=/c.pem",
        "mqtt://h?bogus=1",
    ],
)
def test_bad_mqtt_url_names_the_setting(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="MQTT_URL"):
        BridgeConfig.from_url(url)
