"""The appliance's settings come from the environment, and bad values fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

SHOW = (
    "import json, django.conf as c; c.settings._setup(); s = c.settings; "
    "print(json.dumps({'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, "
    "'layer': s.CHANNEL_LAYERS['default'], 'db': s.DATABASES['default']['ENGINE'], "
    "'mqtt': s.MQTT_URL, 'telegram': s.TELEGRAM_BOT_TOKEN}))"
)


def load(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DEBUG", "ALLOWED_HOSTS", "REDIS_URL", "REDIS_LAYER", "DATABASE_URL", "SECRET_KEY"}
    }
    environ.update(
        {"DJANGO_SETTINGS_MODULE": "project.settings", "GATEWAY_DATA_DIR": str(tmp_path)}, **env
    )
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_are_the_embedded_appliance(tmp_path: Path) -> None:
    result = load({}, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is False
    assert shown["layer"] == {
        "BACKEND": "gateway.layers.InMemoryChannelLayer",
        "CONFIG": {"channel_capacity": {"chatbot.notify": 10_000, "telegram.send": 10_000}},
    }
    assert shown["db"] == "django.db.backends.sqlite3"
    assert shown["mqtt"] is None
    assert shown["telegram"] is None
    # A generated secret key is kept private and reused.
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
    generated = key_file.read_text()
    assert len(generated) >= 50
    assert load({}, tmp_path).returncode == 0
    assert key_file.read_text() == generated


def test_environment_overrides(tmp_path: Path) -> None:
    result = load(
        {
            "DEBUG": "true",
            "ALLOWED_HOSTS": "a.example, b.example",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/gateway",
            "MQTT_URL": "mqtt://broker:1883",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is True
    assert shown["hosts"] == ["a.example", "b.example"]
    assert shown["layer"] == {
        "BACKEND": "gateway.layers.redis.RedisChannelLayer",
        "CONFIG": {
            "hosts": ["redis://127.0.0.1:6379/3"],
            "channel_capacity": {"chatbot.notify": 10_000, "telegram.send": 10_000},
        },
    }
    assert shown["db"] == "django.db.backends.postgresql"
    assert shown["mqtt"] == "mqtt://broker:1883"


def test_redis_layer_picks_the_pubsub_layer(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:6379/3", "REDIS_LAYER": "pubsub"}
    result = load(env, tmp_path)
    assert result.returncode == 0, result.stderr
    layer = json.loads(result.stdout)["layer"]
    assert layer["BACKEND"] == "gateway.layers.redis.RedisPubSubChannelLayer"
    assert layer["CONFIG"]["hosts"] == ["redis://127.0.0.1:6379/3"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"REDIS_URL": "http://127.0.0.1"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1", "REDIS_LAYER": "channels_redis"}, "REDIS_LAYER"),
        ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str, tmp_path: Path) -> None:
    result = load(env, tmp_path)
    assert result.returncode != 0
    assert named in result.stderr.strip().splitlines()[-1]
