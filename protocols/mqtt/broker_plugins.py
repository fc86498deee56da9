"""The amqtt plugins that tie the embedded broker to its link (amqtt's plugin API).

amqtt builds its plugins itself, from dotted paths in its configuration, handing
each the configuration given under its path; that configuration names the link
(by the id it :func:`register` ed under) the plugin reports to:

- :class:`DeviceAuthPlugin` lets in what the door admitted and remembers each
  session's topic ACL;
- :class:`DeviceTopicPlugin` applies that ACL to every PUBLISH, SUBSCRIBE and
  delivery (a device may only use its own topics);
- :class:`GatewayEventsPlugin` hands every message the broker accepted to the
  link, reports presence, and records when each client was last heard from.

What each one decides is the link's (:class:`~protocols.mqtt.broker.BrokerLink`);
these classes only carry amqtt's calls to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin


class PluginHost(Protocol):
    """The link, as its plugins see it."""

    def admitted(self, session: Any) -> bool: ...

    def allowed(self, session: Any, topic: str | None, action: Action | None) -> bool: ...

    def message_accepted(self, client_id: str, message: Any) -> None: ...

    def client_connected(self, client_id: str, session: Any) -> None: ...

    def client_disconnected(self, client_id: str, session: Any) -> None: ...

    def heard_from(self, client_id: str, packet: Any) -> None: ...


_HOSTS: dict[str, PluginHost] = {}


def register(host_id: str, host: PluginHost) -> dict[str, Any]:
    """Let the plugins configured with ``host_id`` reach ``host``; amqtt's ``plugins``
    configuration for them."""
    _HOSTS[host_id] = host
    settings = {"link": host_id}
    return {
        f"{__name__}.{plugin.__name__}": settings
        for plugin in (DeviceAuthPlugin, DeviceTopicPlugin, GatewayEventsPlugin)
    }


def unregister(host_id: str) -> None:
    _HOSTS.pop(host_id, None)


class _LinkedPlugin:
    """Finds the link a plugin instance belongs to (by its config)."""

    config: Any

    @dataclass
    class Config:
        link: str = ""

    @property
    def link(self) -> PluginHost:
        return _HOSTS[self.config.link]


class DeviceAuthPlugin(_LinkedPlugin, BaseAuthPlugin):
    async def authenticate(self, *, session: Any) -> bool:
        return self.link.admitted(session)


class DeviceTopicPlugin(_LinkedPlugin, BaseTopicPlugin):
    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        return self.link.allowed(session, topic, action)


class GatewayEventsPlugin(_LinkedPlugin, BasePlugin):
    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        self.link.message_accepted(client_id, message)

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        self.link.client_connected(client_id, client_session)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        self.link.client_disconnected(client_id, client_session)

    async def on_mqtt_packet_received(self, *, packet: Any, session: Any = None) -> None:
        if session is not None and session.client_id:
            self.link.heard_from(session.client_id, packet)
