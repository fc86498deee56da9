"""The broker role: an embedded amqtt 0.12 broker whose messages reach the routes.

Devices connect to the broker; three amqtt plugins (its plugin API, configured by
dotted path) tie it to gateway:

- :class:`DeviceAuthPlugin` checks credentials against ``gateway.devices``
  (hashed passwords) and remembers each session's topic ACL;
- :class:`DeviceTopicPlugin` applies that ACL to every PUBLISH, SUBSCRIBE and
  delivery (a device may only use its own topics);
- :class:`GatewayEventsPlugin` hands every message the broker accepted to the
  server, reports presence, and records when each client was last heard from.

amqtt does not enforce keep-alive (amqtt#308): :meth:`BrokerLink._enforce_keepalive`
closes a connection silent for 1.5 times its keep-alive (MQTT 3.1.1 §3.1.2.10), which
makes amqtt publish its Last Will (§3.1.2.5) and report it disconnected.

amqtt speaks MQTT 3.1.1 only, acknowledges QoS 1/2 publishes itself on receipt,
and fires plugin events as separate tasks (created in arrival order, so the
server still sees one client's messages in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from django.core.exceptions import ImproperlyConfigured

from gateway.db import DatabaseSyncToAsync
from gateway.devices.acl import DeviceACL
from protocols.mqtt.events import Incoming, Publish, Role
from protocols.mqtt.link import LinkSink

logger = logging.getLogger("gateway.server.mqtt")

_LINKS: dict[str, BrokerLink] = {}
_ACL_ATTRIBUTE = "gateway_acl"


class _LinkedPlugin:
    """Finds the :class:`BrokerLink` a plugin instance belongs to (by its config)."""

    config: Any

    @dataclass
    class Config:
        link: str = ""

    @property
    def link(self) -> BrokerLink:
        return _LINKS[self.config.link]


class DeviceAuthPlugin(_LinkedPlugin, BaseAuthPlugin):
    async def authenticate(self, *, session: Any) -> bool:
        return await self.link.authenticate(session)


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


def _authenticate_device(username: str | None, password: str | None) -> DeviceACL | None:
    from gateway.devices.models import authenticate_device

    return authenticate_device(username, password)


class BrokerLink:
    """Serve devices with an embedded broker listening on ``host:port``."""

    role: Role = "broker"
    mqtt_version = "3.1.1"

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 1883,
        *,
        ws_port: int | None = None,
        allow_anonymous: bool = False,
        keepalive_check_interval: float = 0.5,
    ) -> None:
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.allow_anonymous = allow_anonymous
        self.keepalive_check_interval = keepalive_check_interval
        self.broker_info: dict[str, Any] = {"host": host, "port": port, "tls": False}
        self.broker: Broker | None = None
        self._id = uuid.uuid4().hex
        self._sink: LinkSink | None = None
        self._last_heard: dict[str, float] = {}
        self._end_reason: dict[str, str] = {}
        self._paused = False
        self._monitor: asyncio.Task[None] | None = None

    def _config(self) -> dict[str, Any]:
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
        if self.ws_port is not None:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{self.ws_port}"}
        plugin = {"link": self._id}
        return {
            "listeners": listeners,
            "timeout_disconnect_delay": 0,
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": plugin,
                f"{__name__}.DeviceTopicPlugin": plugin,
                f"{__name__}.GatewayEventsPlugin": plugin,
            },
        }

    # -- Link ---------------------------------------------------------------

    async def start(self, sink: LinkSink) -> None:
        self._sink = sink
        _LINKS[self._id] = self
        self.broker = Broker(self._config())
        try:
            await self.broker.start()
        except Exception as exc:
            _LINKS.pop(self._id, None)
            raise ImproperlyConfigured(
                f"the embedded MQTT broker cannot listen on {self.host}:{self.port} "
                f"(--mqtt-port): {exc}"
            ) from exc
        servers = self.broker._servers  # amqtt has no public accessor for bound ports
        self.port = servers["default"].instance.sockets[0].getsockname()[1]
        if self.ws_port is not None:
            self.ws_port = next(iter(servers["ws"].instance.sockets)).getsockname()[1]
        self.broker_info["port"] = self.port
        self._monitor = asyncio.create_task(self._enforce_keepalive(), name="mqtt keepalive")
        logger.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
        _LINKS.pop(self._id, None)

    async def publish(self, message: Publish) -> asyncio.Future[list[int]] | None:
        if self.broker is None:
            raise ConnectionError("the embedded broker is not running")
        await self.broker.internal_message_broadcast(message.topic, message.payload, message.qos)
        if message.retain:
            await self.broker.retain_message(None, message.topic, message.payload, message.qos)
        if message.request_id is None:
            return None
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        done.set_result([])
        return done

    async def subscribe(self, filters: dict[str, int]) -> list[int]:
        """Nothing to do at the broker: the server matches every accepted message."""
        return list(filters.values())

    async def unsubscribe(self, filters: list[str]) -> list[int]:
        return [0 for _ in filters]

    def pause_reading(self) -> None:
        self._paused = True
        for transport in self._transports():
            transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        for transport in self._transports():
            transport.resume_reading()

    def _transports(self) -> list[Any]:
        """The TCP transports of connected devices (WebSocket ones cannot be paused)."""
        found = []
        sessions = self.broker.sessions.values() if self.broker is not None else []
        for _session, handler in sessions:
            stream = getattr(getattr(handler, "writer", None), "_writer", None)
            transport = getattr(stream, "transport", None)
            if transport is not None and not transport.is_closing():
                found.append(transport)
        return found

    # -- plugin callbacks ---------------------------------------------------

    async def authenticate(self, session: Any) -> bool:
        if session.username is None:
            setattr(session, _ACL_ATTRIBUTE, None)
            return self.allow_anonymous
        acl = await DatabaseSyncToAsync(_authenticate_device, thread_sensitive=False)(
            session.username, session.password
        )
        setattr(session, _ACL_ATTRIBUTE, acl)
        if acl is None:
            logger.warning("device %r refused: bad credentials", session.username)
        return acl is not None

    def allowed(self, session: Any, topic: str | None, action: Action | None) -> bool:
        acl: DeviceACL | None = getattr(session, _ACL_ATTRIBUTE, None)
        if acl is None:
            return self.allow_anonymous
        if topic is None:
            return False
        if action == Action.PUBLISH:
            permitted = acl.may_publish(topic)
        elif action == Action.SUBSCRIBE:
            permitted = acl.may_subscribe(topic)
        else:
            permitted = acl.may_receive(topic)
        if not permitted:
            logger.info("device %r may not %s %r", acl.username, action, topic)
        return permitted

    def message_accepted(self, client_id: str, message: Any) -> None:
        assert self._sink is not None
        packet = message.publish_packet
        session = self.broker.sessions.get(client_id, (None, None))[0] if self.broker else None
        self._sink.deliver(
            Incoming(
                message.topic,
                bytes(message.data),
                message.qos or 0,
                bool(packet.retain_flag) if packet is not None else False,
                bool(packet.dup_flag) if packet is not None else False,
                {},
                {"client_id": client_id, "username": getattr(session, "username", None)},
            )
        )

    def heard_from(self, client_id: str, packet: Any) -> None:
        self._last_heard[client_id] = time.monotonic()
        if isinstance(packet, DisconnectPacket):
            self._end_reason[client_id] = "disconnect"

    def client_connected(self, client_id: str, session: Any) -> None:
        self._last_heard[client_id] = time.monotonic()
        self._end_reason.pop(client_id, None)
        if self._paused:
            self.pause_reading()
        assert self._sink is not None
        self._sink.presence(client_id, session.username, True, "connect")

    def client_disconnected(self, client_id: str, session: Any) -> None:
        self._last_heard.pop(client_id, None)
        reason = self._end_reason.pop(client_id, "lost")
        assert self._sink is not None
        self._sink.presence(client_id, session.username, False, reason)

    async def _enforce_keepalive(self) -> None:
        """Close connections silent for 1.5 times keep-alive (MQTT 3.1.1 §3.1.2.10)."""
        while True:
            await asyncio.sleep(self.keepalive_check_interval)
            if self.broker is None:
                continue
            now = time.monotonic()
            for client_id, (session, handler) in list(self.broker.sessions.items()):
                if session.transitions.state != "connected" or session.keep_alive <= 0:
                    continue
                heard = self._last_heard.get(client_id)
                if heard is not None and now - heard > 1.5 * session.keep_alive:
                    logger.info("device %r silent past its keep-alive: closing", client_id)
                    self._end_reason[client_id] = "keepalive"
                    self._last_heard.pop(client_id, None)
                    await handler.handle_connection_closed()
