"""One rule for every configuration variable: the Django setting, else the environment.

A project that defines ``TELEGRAM_API_URL`` (or ``MQTT_URL``, ``REDIS_URL``, ...) in its
settings decides; a project that does not can still be configured by the process
environment, as the docs promise for every variable they name. Empty values count
as unset, so ``MQTT_URL=`` in a compose file means "not set".
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def setting(name: str, default: Any = None) -> Any:
    """``settings.<name>`` if set and not empty, else ``$<name>`` if not empty, else default."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        value = os.environ.get(name) or None
    return default if value is None else value
