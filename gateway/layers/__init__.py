"""Channel layers: the registry built from ``CHANNEL_LAYERS``, and the layers themselves.

``CHANNEL_LAYERS`` maps an alias to a backend, as in Channels::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
            # optional: used instead of CONFIG while Django's test runner is active
            "TEST_CONFIG": {"hosts": ["redis://127.0.0.1:6379/15"]},
        },
    }

:func:`get_channel_layer` returns the layer for an alias, building it on first
use and keeping it until ``CHANNEL_LAYERS`` changes (``override_settings``
included). It returns ``None`` only when no layer is configured under that
alias; a backend that cannot be imported raises
:class:`~gateway.exceptions.InvalidChannelLayerError`, and an error raised while
the backend is built propagates as it is (Channels 4.3 turns a ``KeyError``
raised there into ``None``).

One layer object serves every event loop of the process: backends keep
whatever is bound to a loop (connections, waiters) per loop, so
``async_to_sync(layer.group_send)(...)`` works from sync code called again and
again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import InvalidChannelLayerError
from gateway.layers.base import BaseChannelLayer
from gateway.layers.memory import InMemoryChannelLayer

__all__ = [
    "BaseChannelLayer",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "channel_layers",
    "get_channel_layer",
]


def in_test_environment() -> bool:
    """Whether Django's test environment is set up (its test runner, or pytest-django)."""
    from django.test.utils import _TestState

    return getattr(_TestState, "saved_data", None) is not None


class ChannelLayerManager:
    """Builds the layers ``CHANNEL_LAYERS`` configures, once per alias, on request."""

    def __init__(self) -> None:
        self.backends: dict[str, BaseChannelLayer] = {}
        self._lock = threading.RLock()
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        """Forget the built layers when ``CHANNEL_LAYERS`` changes (``override_settings``)."""
        if setting == "CHANNEL_LAYERS":
            with self._lock:
                self.backends = {}

    @property
    def configs(self) -> Mapping[str, Any]:
        """The ``CHANNEL_LAYERS`` setting, read lazily so this module imports early."""
        return getattr(settings, "CHANNEL_LAYERS", None) or {}

    def make_backend(self, name: str) -> BaseChannelLayer:
        """Build the layer ``name`` from its ``CONFIG``."""
        return self._make_backend(name, self._config(name).get("CONFIG", {}))

    def make_test_backend(self, name: str) -> BaseChannelLayer:
        """Build the layer ``name`` from its ``TEST_CONFIG``."""
        config = self._config(name)
        if "TEST_CONFIG" not in config:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for channel layer {name!r}")
        return self._make_backend(name, config["TEST_CONFIG"])

    def _config(self, name: str) -> Mapping[str, Any]:
        config = self.configs[name]
        if not isinstance(config, Mapping):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] must be a dict with a BACKEND, not {config!r}"
            )
        if "ROUTING" in config:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] has a ROUTING key: layers take no routing; remove it"
            )
        return config

    def _make_backend(self, name: str, config: Any) -> BaseChannelLayer:
        if not isinstance(config, Mapping):
            raise InvalidChannelLayerError(
                f"The CONFIG of channel layer {name!r} must be a dict, not {config!r}"
            )
        path = self._config(name).get("BACKEND")
        if not path:
            raise InvalidChannelLayerError(f"No BACKEND specified for channel layer {name!r}")
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"Cannot import BACKEND {path!r} of channel layer {name!r}: {exc}"
            ) from exc
        layer: BaseChannelLayer = backend_class(**config)
        return layer

    def __getitem__(self, key: str) -> BaseChannelLayer:
        """The layer ``key``, built on first use; ``KeyError`` if it is not configured."""
        with self._lock:
            if key not in self.backends:
                config = self._config(key)
                if "TEST_CONFIG" in config and in_test_environment():
                    self.backends[key] = self.make_test_backend(key)
                else:
                    self.backends[key] = self.make_backend(key)
            return self.backends[key]

    def __contains__(self, key: object) -> bool:
        return key in self.configs

    def set(self, key: str, layer: BaseChannelLayer) -> BaseChannelLayer | None:
        """Put ``layer`` under ``key`` (tests use this); return the layer it replaces."""
        with self._lock:
            old = self.backends.get(key)
            self.backends[key] = layer
            return old


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """The channel layer configured as ``alias``, or ``None`` if there is none.

    >>> from asgiref.sync import async_to_sync
    >>> layer = get_channel_layer()
    >>> async_to_sync(layer.send)("thumbnails", {"type": "thumbnail.generate", "id": 1})
    """
    if alias not in channel_layers:
        return None
    return channel_layers[alias]
