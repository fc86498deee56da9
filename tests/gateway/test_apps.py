"""gateway.apps: the Django app, label ``gateway``, and its management commands."""

from django.apps import apps
from django.core.management import get_commands

from gateway.apps import GatewayConfig


def test_the_app_is_installed_under_the_gateway_label():
    config = apps.get_app_config("gateway")
    assert isinstance(config, GatewayConfig)
    assert config.name == "gateway"


def test_its_management_commands_are_discovered():
    assert get_commands()["runworker"] == "gateway"
