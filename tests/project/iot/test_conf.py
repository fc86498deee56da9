"""Settings: defaults without settings.py entries, and one clear error per bad value."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from project.iot.conf import IotSettings, iot_settings


def test_defaults() -> None:
    assert iot_settings() == IotSettings(
        retention=timedelta(days=7),
        command_timeout=30.0,
        max_payload_bytes=4096,
        max_metrics=32,
        write_interval=0.5,
        write_batch=500,
        notify_channels=(),
    )


@override_settings(IOT_RETENTION=3600, IOT_WRITE_BATCH=50)
def test_retention_in_seconds() -> None:
    config = iot_settings()
    assert (config.retention, config.write_batch) == (timedelta(hours=1), 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IOT_RETENTION", 0),
        ("IOT_RETENTION", "7d"),
        ("IOT_COMMAND_TIMEOUT", -1),
        ("IOT_MAX_PAYLOAD_BYTES", 4.5),
        ("IOT_MAX_METRICS", 0),
        ("IOT_WRITE_INTERVAL", True),
        ("IOT_WRITE_BATCH", "500"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: object) -> None:
    with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured, match=name):
        iot_settings()
