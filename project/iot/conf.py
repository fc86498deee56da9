"""The IoT app's settings, read from Django settings with safe defaults.

Nothing here needs an entry in ``settings.py``: each value is the Django setting
when the project defines it, else the default. A bad value raises
``ImproperlyConfigured`` naming the setting, when the ingest side starts (or a
service reads it), never halfway through a message.

=========================  ==========  ===============================================
setting                    default     meaning
=========================  ==========  ===============================================
``IOT_RETENTION``          7 days      how long readings (and finished alerts and
                                       commands) are kept: seconds or a ``timedelta``
``IOT_COMMAND_TIMEOUT``    30          seconds a command may stay pending before it
                                       becomes ``timed_out``
``IOT_MAX_PAYLOAD_BYTES``  4096        largest telemetry/ack payload accepted
``IOT_MAX_METRICS``        32          most metrics in one telemetry payload
``IOT_WRITE_INTERVAL``     0.5         seconds a reading may wait before it is written
``IOT_WRITE_BATCH``        500         readings that make the writer flush at once
``IOT_NOTIFY_CHANNELS``    ``[]``      channel names that get every ``iot.alert`` and
                                       ``iot.command`` once (groups reach every member:
                                       a worker channel reaches one receiver)
=========================  ==========  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class IotSettings:
    retention: timedelta
    command_timeout: float
    max_payload_bytes: int
    max_metrics: int
    write_interval: float
    write_batch: int
    notify_channels: tuple[str, ...]


def _checked(name: str, value: object, *, minimum: float, integer: bool = False) -> float:
    """``value`` if it is a number (an int when ``integer``) of at least ``minimum``."""
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        what = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {what} >= {minimum}, not {value!r}")
    return value


def _setting(name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    return _checked(name, getattr(settings, name, default), minimum=minimum, integer=integer)


def _retention() -> timedelta:
    value = getattr(settings, "IOT_RETENTION", timedelta(days=7))
    if not isinstance(value, timedelta):
        value = timedelta(seconds=_checked("IOT_RETENTION", value, minimum=0))
    if value <= timedelta(0):
        raise ImproperlyConfigured(f"IOT_RETENTION must be positive, not {value!r}")
    return value


def _channel_names(name: str) -> tuple[str, ...]:
    value = getattr(settings, name, ())
    if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
        raise ImproperlyConfigured(f"{name} must be a list of channel names, not {value!r}")
    return tuple(value)


def iot_settings() -> IotSettings:
    """The current settings (read on every call: cheap, and ``override_settings`` works)."""
    return IotSettings(
        retention=_retention(),
        command_timeout=_setting("IOT_COMMAND_TIMEOUT", 30.0, minimum=0),
        max_payload_bytes=int(_setting("IOT_MAX_PAYLOAD_BYTES", 4096, minimum=16, integer=True)),
        max_metrics=int(_setting("IOT_MAX_METRICS", 32, minimum=1, integer=True)),
        write_interval=_setting("IOT_WRITE_INTERVAL", 0.5, minimum=0.001),
        write_batch=int(_setting("IOT_WRITE_BATCH", 500, minimum=1, integer=True)),
        notify_channels=_channel_names("IOT_NOTIFY_CHANNELS"),
    )
