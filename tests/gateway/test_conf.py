"""gateway.conf: the Django setting decides, else the environment, else the default."""

from __future__ import annotations

import pytest
from django.test import override_settings

from gateway.conf import setting


def test_the_setting_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_URL", "http://from-env/bot")
    with override_settings(TELEGRAM_API_URL="http://from-settings/bot"):
        assert setting("TELEGRAM_API_URL") == "http://from-settings/bot"


def test_without_the_setting_the_environment_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/bot")
    assert setting("TELEGRAM_API_URL", "https://api.telegram.org/bot") == (
        "http://127.0.0.1:8081/bot"
    )


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_URL", "")
    with override_settings(MQTT_URL=""):
        assert setting("MQTT_URL") is None
        assert setting("MQTT_URL", "fallback") == "fallback"
