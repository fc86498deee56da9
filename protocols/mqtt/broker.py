"""The broker role: an embedded amqtt 0.12 broker whose messages reach the routes.

Devices reach amqtt through the door (:mod:`protocols.mqtt.door`: limits, credentials
checked by :class:`~gateway.devices.authenticator.DeviceAuthenticator`, the Will
against the ACL, client id ownership and takeover) on the sockets of
:mod:`protocols.mqtt.listeners`; amqtt binds none itself (an ``external`` listener).
Three amqtt plugins (:mod:`protocols.mqtt.broker_plugins`) carry amqtt's calls to
the link: it lets in what the door admitted and remembers each session's topic ACL,
applies that ACL to every PUBLISH, SUBSCRIBE and delivery (a device may only use its
own topics), hands every message the broker accepted to the server, reports
presence, and records when each client was last heard from.

amqtt does not enforce keep-alive (amqtt#308): :meth:`BrokerLink._watch_connections`
closes a connection silent for 1.5 times its keep-alive (MQTT 3.1.1 §3.1.2.10; who is
overdue is :mod:`protocols.mqtt.liveness`'s answer), which makes amqtt publish its Last
Will (§3.1.2.5) and report it disconnected; it also ends sessions amqtt left connected
after their connection ended.

amqtt speaks MQTT 3.1.1 only, acknowledges QoS 1/2 publishes itself on receipt,
and fires plugin events as separate tasks (created in arrival order, so the
server still sees one client's messages in order).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import uuid
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.contexts import Action
from amqtt.mqtt.disconnect import DisconnectPacket
from django.core.exceptions import ImproperlyConfigured

from gateway.devices.acl import DeviceACL
from gateway.devices.authenticator import DeviceAuthenticator, Refusal
from gateway.mqtt.codes import ReturnCode
from gateway.mqtt.events import BrokerInfo, Incoming, Publish, Role
from gateway.startup import Summary, all_interfaces, is_loopback
from protocols.mqtt import broker_plugins
from protocols.mqtt.connect import Connect
from protocols.mqtt.door import Door, DoorLimits, Identity, Refused
from protocols.mqtt.embedded import EmbeddedBroker
from protocols.mqtt.link import LinkSink
from protocols.mqtt.listeners import Listeners, ListenerSpec, TLSFiles
from protocols.mqtt.liveness import Liveness

logger = logging.getLogger("gateway.server.mqtt")

_ACL_ATTRIBUTE = "gateway_acl"
#: amqtt's one listener: connections arrive from the door (``external_connected``).
_LISTENER = "default"
#: Seconds amqtt's shutdown may take to close its sessions before every connection
#: still open is aborted (:meth:`BrokerLink._shut_down_broker`).
SHUTDOWN_GRACE = 1.0
#: CONNACK return codes of the authenticator's refusals (§3.2.2.3).
_REFUSAL_CODES = {
    Refusal.BAD_CREDENTIALS: ReturnCode.BAD_USERNAME_OR_PASSWORD,
    Refusal.THROTTLED: ReturnCode.SERVER_UNAVAILABLE,
    Refusal.BUSY: ReturnCode.SERVER_UNAVAILABLE,
}


class BrokerLink:
    """Serve devices with an embedded broker listening on ``host:port``.

    Also on ``tls_port`` (MQTT over TLS) when ``tls`` names a certificate and key,
    ``ws_port`` (MQTT over WebSocket) and ``wss_port`` (over secure WebSocket, needs
    ``tls``); port 0 binds an ephemeral port, read back from the attribute after
    :meth:`start`. ``limits`` bound every connection (:class:`DoorLimits`).
    """

    role: Role = "broker"
    mqtt_version = "3.1.1"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        ws_port: int | None = None,
        tls: TLSFiles | None = None,
        tls_port: int | None = None,
        wss_port: int | None = None,
        allow_anonymous: bool = False,
        limits: DoorLimits | None = None,
        authenticator: DeviceAuthenticator | None = None,
        keepalive_check_interval: float = 0.5,
    ) -> None:
        if tls is None and (tls_port is not None or wss_port is not None):
            raise ImproperlyConfigured(
                "the embedded MQTT broker needs a certificate and key for TLS "
                "(--mqtt-ssl-certfile, --mqtt-ssl-keyfile)"
            )
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.tls = tls
        self.tls_port = tls_port
        self.wss_port = wss_port
        self.allow_anonymous = allow_anonymous
        self.keepalive_check_interval = keepalive_check_interval
        self.broker_info: BrokerInfo = {"host": host, "port": port, "tls": False}
        self.broker: EmbeddedBroker | None = None
        self.authenticator = authenticator or DeviceAuthenticator()
        self.door = Door(self, limits)
        self._listeners = Listeners(self.door)
        self.connected = False
        #: Client ids connected now (amqtt's sessions also hold disconnected ones).
        self._clients: set[str] = set()
        self._id = uuid.uuid4().hex
        self._sink: LinkSink | None = None
        self._liveness = Liveness()
        self._paused = False
        self._monitor: asyncio.Task[None] | None = None

    # -- Link ---------------------------------------------------------------

    async def start(self, sink: LinkSink) -> None:
        self._sink = sink
        plugins = broker_plugins.register(self._id, self)
        self.broker = EmbeddedBroker(
            {
                "listeners": {_LISTENER: {"type": "external", "bind": "door"}},
                "timeout_disconnect_delay": 0,
                "plugins": plugins,
            }
        )
        await self.broker.start()
        try:
            await self._listen()
        except Exception:
            await self.stop()
            raise
        self.broker_info["port"] = self.port
        # Pages that show devices where to connect (the starter project's dashboard)
        # read MQTT_PUBLIC_ADDRESS; in the one-process appliance this broker is it.
        os.environ.setdefault("MQTT_PUBLIC_ADDRESS", f":{self.port}")
        self.connected = True
        self._monitor = asyncio.create_task(self._watch_connections(), name="mqtt keepalive")

    def _listener_specs(self) -> list[tuple[ListenerSpec, str]]:
        """Every socket to open, with the option that sets its port."""
        context = self.tls.context() if self.tls is not None else None
        wanted = [
            (ListenerSpec("mqtt", self.host, self.port), "--mqtt-port"),
            (ListenerSpec("mqtts", self.host, self.tls_port or 0, tls=context), "--mqtt-tls-port"),
            (ListenerSpec("ws", self.host, self.ws_port or 0, websocket=True), "--mqtt-ws-port"),
            (
                ListenerSpec("wss", self.host, self.wss_port or 0, tls=context, websocket=True),
                "--mqtt-wss-port",
            ),
        ]
        chosen = {"mqtt": True, "mqtts": self.tls is not None}
        chosen |= {"ws": self.ws_port is not None, "wss": self.wss_port is not None}
        return [(spec, option) for spec, option in wanted if chosen[spec.name]]

    async def _listen(self) -> None:
        for spec, option in self._listener_specs():
            try:
                await self._listeners.start(spec)
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EADDRINUSE:
                    hint = (
                        f"; another program (a Mosquitto?) holds it: pick a free port with "
                        f"{option} {spec.port + 1}, or bridge to that broker with --mqtt-url"
                    )
                raise ImproperlyConfigured(
                    f"the embedded MQTT broker cannot listen on {spec.host}:{spec.port} "
                    f"({option}): {exc}{hint}"
                ) from exc
            logger.info(
                "embedded MQTT broker listening on %s:%d (%s)",
                self.host,
                self._listeners.ports[spec.name],
                spec.name,
            )
        ports = self._listeners.ports
        self.port = ports["mqtt"]
        self.tls_port = ports.get("mqtts")
        self.ws_port = ports.get("ws")
        self.wss_port = ports.get("wss")

    async def stop(self) -> None:
        self.connected = False
        self.door.close()
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        if self.broker is not None:
            await self._shut_down_broker(self.broker)
        await self._listeners.close()
        self.authenticator.close()
        broker_plugins.unregister(self._id)

    async def _shut_down_broker(self, broker: EmbeddedBroker) -> None:
        """amqtt's shutdown, within :data:`SHUTDOWN_GRACE` seconds twice over.

        amqtt closes its sessions one after the other, each once its reader task has
        ended. Under traffic that can take for ever: Python 3.11's ``wait_for``
        loses the cancellation of a reader whose read completes at the same moment,
        and the reader then goes on reading a device that keeps publishing (SIGTERM
        with devices publishing held the broker until the process's bound cancelled
        it). After the grace every connection is aborted, which ends every reader at
        once; whatever still hangs after a second grace is cancelled.
        """
        shutdown = asyncio.ensure_future(broker.shutdown())
        _, pending = await asyncio.wait({shutdown}, timeout=SHUTDOWN_GRACE)
        if pending:
            aborted = self._listeners.abort()
            logger.warning(
                "embedded MQTT broker: its sessions were not closed %gs into shutdown; "
                "%d connection(s) aborted",
                SHUTDOWN_GRACE,
                aborted,
            )
            _, pending = await asyncio.wait({shutdown}, timeout=SHUTDOWN_GRACE)
        if pending:
            shutdown.cancel()
            await asyncio.wait({shutdown}, timeout=SHUTDOWN_GRACE)
        if shutdown.done() and not shutdown.cancelled():
            shutdown.exception()  # amqtt's own failures while stopping: nothing to add

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

    def open_connections(self) -> int:
        return len(self._clients)

    def describe(self, summary: Summary) -> None:
        everywhere = all_interfaces(self.host)
        host = socket.gethostname() if everywhere else self.host
        where = ", on every interface" if everywhere else ""
        text = f"mqtt://{host}:{self.port} (embedded broker{where})"
        if self.tls_port is not None:
            text += f"; mqtts://{host}:{self.tls_port}"
        if self.ws_port is not None:
            text += f"; MQTT over WebSocket on port {self.ws_port}"
        if self.wss_port is not None:
            text += f"; over secure WebSocket on port {self.wss_port}"
        summary.add("MQTT devices", text)
        if is_loopback(self.host):
            summary.add(
                "",
                "loopback only: --mqtt-host 0.0.0.0 lets devices on the network in "
                "(with --mqtt-ssl-certfile/--mqtt-ssl-keyfile for TLS)",
            )
        if self.allow_anonymous:
            summary.warn(
                "devices may connect without credentials and use any topic "
                "(--mqtt-anonymous): for trials only"
            )
        if not is_loopback(self.host):
            plain = f"port {self.port}" + (f" and {self.ws_port}" if self.ws_port else "")
            summary.warn(
                f"the embedded broker listens on {self.host or 'every interface'} without "
                f"TLS on {plain}: device secrets and data cross the network in clear "
                + (
                    f"for devices not using TLS (port {self.tls_port})"
                    if self.tls_port is not None
                    else "(--mqtt-ssl-certfile/--mqtt-ssl-keyfile add TLS on --mqtt-tls-port)"
                )
            )

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

    # -- the door's Hall -----------------------------------------------------

    async def authenticate(self, connect: Connect, peer: str) -> Identity | Refused:
        if connect.username is None:
            if self.allow_anonymous:
                return Identity(None)
            return Refused(ReturnCode.NOT_AUTHORIZED, "no credentials (--mqtt-anonymous is off)")
        verdict = await self.authenticator.authenticate(connect.username, connect.password, peer)
        if isinstance(verdict, Refusal):
            return Refused(_REFUSAL_CODES[verdict], verdict.value)
        return Identity(verdict)

    def session_owner(self, client_id: str) -> Identity | None:
        """Who owns a persistent session (clean session 0, §3.1.2.4) kept for ``client_id``."""
        session = self.broker.sessions.get(client_id, (None, None))[0] if self.broker else None
        if session is None or session.clean_session:
            return None
        return Identity(getattr(session, _ACL_ATTRIBUTE, None))

    def ending(self, client_id: str, reason: str) -> None:
        self._liveness.ending(client_id, reason)

    async def hand_over(self, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        assert self.broker is not None  # the door serves only while the broker runs
        await self.broker.external_connected(reader, writer, _LISTENER)

    # -- plugin callbacks ---------------------------------------------------

    def admitted(self, session: Any) -> bool:
        """Let in the connection the door admitted under this client id, with its ACL."""
        identity = self.door.identity(session.client_id)
        setattr(session, _ACL_ATTRIBUTE, None if identity is None else identity.acl)
        return identity is not None

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
        self._liveness.heard(client_id)
        if isinstance(packet, DisconnectPacket):
            self._liveness.ending(client_id, "disconnect")

    def client_connected(self, client_id: str, session: Any) -> None:
        self._liveness.connected(client_id)
        self._clients.add(client_id)
        if self._paused:
            self.pause_reading()
        assert self._sink is not None
        self._sink.presence(client_id, session.username, True, "connect")

    def client_disconnected(self, client_id: str, session: Any) -> None:
        self._clients.discard(client_id)
        reason = self._liveness.disconnected(client_id)
        assert self._sink is not None
        self._sink.presence(client_id, session.username, False, reason)

    async def _watch_connections(self) -> None:
        """End connected sessions whose connection is silent or already gone.

        Silent: no packet for 1.5 times its keep-alive (MQTT 3.1.1 §3.1.2.10; amqtt
        does not enforce it). Gone: amqtt's reader has ended but the session is still
        connected, which happens when a device leaves right after its CONNECT, before
        amqtt's handler has started (its end-of-stream notice is lost): without this
        the connection would never end, nor free its client id.
        """
        while True:
            await asyncio.sleep(self.keepalive_check_interval)
            if self.broker is None:
                continue
            now = self._liveness.clock()
            for client_id, (session, handler) in list(self.broker.sessions.items()):
                if session.transitions.state != "connected":
                    continue
                if _reader_ended(handler):
                    logger.debug("device %r: its connection ended unnoticed: closing", client_id)
                elif self._liveness.overdue(client_id, session.keep_alive, now):
                    logger.info("device %r silent past its keep-alive: closing", client_id)
                    self._liveness.ending(client_id, "keepalive")
                else:
                    continue
                self._liveness.forget(client_id)
                await handler.handle_connection_closed()


def _reader_ended(handler: Any) -> bool:
    """Whether amqtt's reader task for ``handler`` has ended (amqtt has no public accessor)."""
    reader = getattr(handler, "_reader_task", None)
    return reader is not None and reader.done()
