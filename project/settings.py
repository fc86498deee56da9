"""Settings for the gateway appliance, filled from the environment (12-factor).

Every variable has a safe default, so ``gateway run`` works with none set:

``SECRET_KEY``          unset: a random key, generated once and kept in ``GATEWAY_DATA_DIR``
``DEBUG``               ``1``/``true`` to enable; off by default
``ALLOWED_HOSTS``       comma-separated; default ``localhost,127.0.0.1,[::1]``
``DATABASE_URL``        e.g. ``postgres://user@host/db``; default SQLite in ``GATEWAY_DATA_DIR``
``REDIS_URL``           e.g. ``redis://127.0.0.1:6379/0``; default the in-memory layer
``REDIS_LAYER``         ``core`` (default: ``RedisChannelLayer``, queues in Redis) or
                        ``pubsub`` (``RedisPubSubChannelLayer``); only with ``REDIS_URL``
``MQTT_URL``            a broker to bridge to; unset: the embedded broker
``TELEGRAM_BOT_TOKEN``  unset: Telegram off
``TELEGRAM_API_URL``    Bot API base URL; default ``https://api.telegram.org/bot``
``GATEWAY_DATA_DIR``    where SQLite and the generated secret live; default ``./var``
``METRICS_TOKEN``       lets machines read ``/metrics`` with ``Authorization: Bearer``;
                        unset: only staff sessions may

A malformed value stops the process at start with one line naming the variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from project.chatbot.menu import COMMANDS as BOT_COMMANDS

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("GATEWAY_DATA_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def secret_key() -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}
    import dj_database_url

    try:
        return dict(dj_database_url.parse(url, conn_max_age=600))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None


#: Room for bursts on the fixed channels the bot's alerts cross: a thousand alerts at
#: once wait there for the worker and for Telegram's flood limits, none is refused.
BURST_CAPACITY = {"chatbot.notify": 10_000, "telegram.send": 10_000}


#: ``REDIS_LAYER`` values: channels_redis' module names for its two layers.
REDIS_LAYERS = {
    "core": "gateway.layers.redis.RedisChannelLayer",
    "pubsub": "gateway.layers.redis.RedisPubSubChannelLayer",
}


def channel_layers() -> dict[str, dict[str, object]]:
    url = os.environ.get("REDIS_URL")
    if not url:
        return {
            "default": {
                "BACKEND": "gateway.layers.InMemoryChannelLayer",
                "CONFIG": {"channel_capacity": BURST_CAPACITY},
            }
        }
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://")
    kind = os.environ.get("REDIS_LAYER", "core")
    if kind not in REDIS_LAYERS:
        raise ImproperlyConfigured(f"REDIS_LAYER must be one of {', '.join(REDIS_LAYERS)}")
    return {
        "default": {
            "BACKEND": REDIS_LAYERS[kind],
            "CONFIG": {"hosts": [url], "channel_capacity": BURST_CAPACITY},
        }
    }


SECRET_KEY = secret_key()
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # First, so its runserver (HTTP + WebSocket) wins over staticfiles'.
    "gateway",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gateway.devices",
    "gateway.telegram",
    "project.iot",
    "project.dashboard",
    "project.chatbot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "project.asgi.application"
DATABASES = {"default": database()}
CHANNEL_LAYERS = channel_layers()

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

MQTT_URL = os.environ.get("MQTT_URL") or None
TELEGRAM_BOT_TOKEN = os.environ.get("TELEGRAM_BOT_TOKEN") or None
TELEGRAM_API_URL = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org/bot")
# The bot's command menu, set on Telegram whenever the Telegram server starts.
TELEGRAM_COMMANDS = BOT_COMMANDS
# Alerts and command updates also go, each exactly once, to the bot's worker channel.
IOT_NOTIFY_CHANNELS = ["chatbot.notify"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# Messages (e.g. a device secret shown once) live in the server-side session, never in
# a cookie the browser keeps.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
