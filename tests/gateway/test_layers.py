"""The layer registry: ``CHANNEL_LAYERS`` -> ``get_channel_layer`` / ``channel_layers``."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import InvalidChannelLayerError
from gateway.layers import (
    BaseChannelLayer,
    InMemoryChannelLayer,
    channel_layers,
    get_channel_layer,
)

MEMORY = "gateway.layers.InMemoryChannelLayer"


class LayerWithBrokenConfig(InMemoryChannelLayer):
    """A backend whose constructor raises KeyError, as a config lookup bug would."""

    def __init__(self, **config: Any) -> None:
        raise KeyError("missing_option")


def test_default_layer_is_built_once_from_settings() -> None:
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert get_channel_layer(DEFAULT_CHANNEL_LAYER) is layer
    assert channel_layers[DEFAULT_CHANNEL_LAYER] is layer


@override_settings(
    CHANNEL_LAYERS={"default": {"BACKEND": MEMORY, "CONFIG": {"capacity": 7, "expiry": 5}}}
)
def test_config_is_passed_to_the_backend() -> None:
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert (layer.capacity, layer.expiry) == (7, 5)


def test_override_settings_replaces_the_layer() -> None:
    before = get_channel_layer()
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY}}):
        during = get_channel_layer()
        assert during is not before
    assert get_channel_layer() is not during


@pytest.mark.parametrize("setting", [{}, None])
def test_no_layer_configured_is_none(setting: Any) -> None:
    with override_settings(CHANNEL_LAYERS=setting):
        assert get_channel_layer() is None
        assert DEFAULT_CHANNEL_LAYER not in channel_layers


def test_unknown_alias_is_none() -> None:
    assert get_channel_layer("elsewhere") is None
    with pytest.raises(KeyError):
        channel_layers["elsewhere"]


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": f"{__name__}.LayerWithBrokenConfig"}})
def test_error_inside_the_backend_constructor_propagates() -> None:
    """Channels 4.3.2 returns None here, hiding the bug behind 'no layer configured'."""
    with pytest.raises(KeyError, match="missing_option"):
        get_channel_layer()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"BACKEND": "gateway.layers.NoSuchLayer"}, "Cannot import BACKEND .* 'broken'"),
        ({"BACKEND": "no_such_module.Layer"}, "Cannot import BACKEND .* 'broken'"),
        ({"CONFIG": {}}, "No BACKEND specified for channel layer 'broken'"),
        ({"BACKEND": MEMORY, "ROUTING": "x.y"}, "ROUTING"),
        ({"BACKEND": MEMORY, "CONFIG": ["capacity"]}, "CONFIG of channel layer 'broken'"),
        ("gateway.layers.InMemoryChannelLayer", "CHANNEL_LAYERS\\['broken'\\] must be a dict"),
    ],
)
def test_misconfiguration_names_the_alias(config: Any, message: str) -> None:
    with (
        override_settings(CHANNEL_LAYERS={"broken": config}),
        pytest.raises(InvalidChannelLayerError, match=message),
    ):
        get_channel_layer("broken")


def test_test_config_is_used_under_the_test_runner() -> None:
    layers = {
        "default": {
            "BACKEND": MEMORY,
            "CONFIG": {"capacity": 1000},
            "TEST_CONFIG": {"capacity": 3},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        layer = get_channel_layer()
        assert layer is not None
        assert layer.capacity == 3
        assert channel_layers.make_backend("default").capacity == 1000


def test_make_test_backend_without_test_config_is_an_error() -> None:
    with pytest.raises(InvalidChannelLayerError, match=r"No TEST_CONFIG .* 'default'"):
        channel_layers.make_test_backend(DEFAULT_CHANNEL_LAYER)


def test_set_replaces_a_layer_and_returns_the_old_one() -> None:
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY}}):
        original = get_channel_layer()
        replacement = InMemoryChannelLayer()
        assert channel_layers.set(DEFAULT_CHANNEL_LAYER, replacement) is original
        assert get_channel_layer() is replacement


def test_public_names() -> None:
    import gateway.layers

    assert set(gateway.layers.__all__) == {
        "BaseChannelLayer",
        "ChannelLayerManager",
        "InMemoryChannelLayer",
        "channel_layers",
        "get_channel_layer",
    }
    assert issubclass(InMemoryChannelLayer, BaseChannelLayer)


def test_one_layer_serves_sync_code_called_repeatedly() -> None:
    """Each async_to_sync call below runs on a new event loop."""
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY}}):
        for n in range(3):
            layer = get_channel_layer()
            assert layer is not None
            async_to_sync(layer.group_add)("room", "listener")
            async_to_sync(layer.group_send)("room", {"type": "test.message", "n": n})
        layer = get_channel_layer()
        assert layer is not None
        received = [async_to_sync(layer.receive)("listener")["n"] for _ in range(3)]
        assert received == [0, 1, 2]
