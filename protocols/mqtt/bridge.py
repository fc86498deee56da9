"""The bridge role: a paho-mqtt client of any broker, driven by the asyncio loop.

paho parses and serialises MQTT; :class:`~protocols.mqtt.paholoop.PahoSocket`
moves its bytes on the loop; this module owns the connection's life:

- connecting (TCP, TLS) runs in a worker thread, so a slow or unreachable broker
  never blocks the event loop; retries back off exponentially (0.2 s to 30 s);
- after every CONNACK all wanted filters are subscribed again (the broker may have
  lost the session: mqttasgi#18/#28, amqtt#149 show what happens otherwise);
- QoS 1/2 messages are acknowledged manually, once the server has queued them
  for their instance (paho ``manual_ack_set``), never on an older connection;
- MQTT 5 by default, falling back to 3.1.1 when the broker refuses the version
  (CONNACK 0x01, 3.1.1 §3.2.2.3), e.g. the embedded amqtt broker; what CONNECT
  asks for and what a CONNACK means are :mod:`protocols.mqtt.bridge_connect`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from django.core.exceptions import ImproperlyConfigured
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.backoff import Backoff
from gateway.mqtt.codes import SubackCode
from gateway.mqtt.events import BrokerInfo, Incoming, Publish, Role, link_event
from gateway.startup import Summary, is_loopback
from gateway.topics import SHARE_PREFIX
from protocols.mqtt.awaited import AwaitedPackets
from protocols.mqtt.bridge_connect import (
    Connack,
    client_settings,
    connect_settings,
    read_connack,
    tls_context,
)
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.link import LinkSink
from protocols.mqtt.paholoop import PahoSocket
from protocols.mqtt.properties import properties_from_dict, properties_to_dict

logger = logging.getLogger("gateway.server.mqtt")

MAX_QUEUED = 10_000


class BridgeLink:
    """A client link to an external broker (see the module docstring)."""

    role: Role = "bridge"

    def __init__(
        self,
        config: BridgeConfig,
        *,
        start_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.2, 30.0),
    ) -> None:
        self.config = config
        self.mqtt_version = config.version
        self.broker_info: BrokerInfo = {"host": config.host, "port": config.port, "tls": config.tls}
        self.start_timeout = start_timeout
        self.backoff = backoff
        self.client_id = config.client_id or f"gateway-{uuid.uuid4().hex[:12]}"
        self.connected = False
        self.connections = 0
        self._sink: LinkSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket = PahoSocket()
        self._generation = 0
        self._stopping = False
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] | None = None
        self._lost = asyncio.Event()
        self._down = asyncio.Event()
        # SUBSCRIBE/UNSUBSCRIBE (failed when the link drops) and QoS 1/2 PUBLISH
        # (kept: paho sends them again after reconnecting).
        self._requests = AwaitedPackets()
        self._publishes = AwaitedPackets()
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- paho client --------------------------------------------------------

    def _make_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            reconnect_on_failure=False,
            **client_settings(self.config, self.mqtt_version),
        )
        client.manual_ack_set(True)
        client.max_queued_messages_set(MAX_QUEUED)
        client.max_inflight_messages_set(100)
        if self.config.username is not None:
            client.username_pw_set(self.config.username, self.config.password)
        context = tls_context(self.config)
        if context is not None:
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_suback
        client.on_unsubscribe = self._on_suback
        return client

    def _connect_blocking(self, client: paho.Client) -> None:
        """TCP + TLS + CONNECT, in a worker thread (never on the event loop)."""
        client.connect(
            self.config.host, self.config.port, **connect_settings(self.config, self.mqtt_version)
        )

    # -- Link ---------------------------------------------------------------

    async def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._socket.start()
        self._room.set()
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self.start_timeout):
                while True:
                    error = await self._connect_once()
                    if error is None:
                        break
                    if isinstance(error, PermissionError):
                        raise ImproperlyConfigured(f"MQTT_URL {self.config.safe_url()}: {error}")
                    await asyncio.sleep(self.backoff[0])
        except TimeoutError:
            await self._close_client()
            raise ConnectionError(
                f"cannot connect to the MQTT broker {self.config.safe_url()}: {error}"
            ) from None
        except BaseException:
            await self._close_client()
            raise
        self._tasks = [
            asyncio.create_task(self._keep_connected(), name="mqtt bridge reconnect"),
            asyncio.create_task(self._keepalive(), name="mqtt bridge keepalive"),
        ]

    async def _connect_once(self) -> BaseException | None:
        """One connection attempt; None once subscribed, else the reason it failed."""
        assert self._loop is not None
        # One paho client for the link's life, so QoS 1/2 messages queued or in
        # flight while the link is down are sent again after the reconnect.
        if self._socket.client is None:
            self._socket.attach(self._make_client())
        client = self._socket.client
        assert client is not None
        self._socket.drop()
        self._connack = self._loop.create_future()
        try:
            await self._loop.run_in_executor(None, self._connect_blocking, client)
            async with asyncio.timeout(max(self.config.keepalive, 5)):
                reason, session_present = await self._connack
        except (OSError, TimeoutError, ValueError) as exc:
            self._socket.drop()
            return exc if not isinstance(exc, TimeoutError) else ConnectionError("no CONNACK")
        verdict = read_connack(reason, self.mqtt_version)
        if verdict is not Connack.ACCEPTED:
            self._socket.drop()
            if verdict is Connack.OLDER_VERSION:
                logger.info("%s speaks MQTT 3.1.1 only", self.config.safe_url())
                self.mqtt_version = "3.1.1"
                await self._close_client()  # a new client speaks the other version
                return ConnectionError("retrying with MQTT 3.1.1")
            if verdict is Connack.BAD_CREDENTIALS:
                return PermissionError(f"the broker refused the credentials ({reason})")
            return ConnectionError(f"the broker refused the connection ({reason})")
        self.connected = True
        self.connections += 1
        self._lost.clear()
        assert self._sink is not None
        filters = self._sink.wanted_filters()
        if filters:
            try:
                codes = await self.subscribe(filters)
            except (ConnectionError, TimeoutError) as exc:
                # Never stay connected without the subscriptions: start over.
                self._socket.drop()
                self.connected = False
                self._lost.set()
                return ConnectionError(f"subscribing after connecting failed: {exc!r}")
            refused = [
                f for f, code in zip(filters, codes, strict=False) if code >= SubackCode.FAILURE
            ]
            if refused:
                logger.error("the broker refused subscriptions to %s", ", ".join(refused))
        self._sink.link_changed(link_event("up", "connected", session_present))
        return None

    async def _keep_connected(self) -> None:
        backoff = Backoff(*self.backoff)
        while True:
            await self._lost.wait()
            error = await self._connect_once()
            if error is None:
                backoff.succeeded()
                logger.info("reconnected to %s", self.config.safe_url())
                continue
            logger.warning(
                "MQTT broker %s unreachable (%s); retrying in %.1fs",
                self.config.safe_url(),
                error,
                backoff.delay,
            )
            await backoff.wait()

    async def _keepalive(self) -> None:
        """paho's timer duties (PINGREQ, and noticing a silent broker, 3.1.1 §3.1.2.10)."""
        while True:
            await asyncio.sleep(1.0)
            if self._socket.client is not None and self.connected:
                self._socket.client.loop_misc()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        client = self._socket.client
        if client is not None and self.connected:
            self._down.clear()
            client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._down.wait()
        await self._close_client()

    async def _close_client(self) -> None:
        self._socket.drop()
        self._socket.client = None
        self.connected = False
        self._requests.fail_all(ConnectionError("the MQTT link closed"))
        self._publishes.fail_all(ConnectionError("the MQTT link closed"))

    async def publish(self, message: Publish) -> asyncio.Future[list[int]] | None:
        while True:
            client = self._socket.client
            if client is None or (not self.connected and message.qos == 0):
                raise ConnectionError("the MQTT link is down")
            info = client.publish(
                message.topic,
                message.payload,
                message.qos,
                message.retain,
                properties_from_dict(message.properties) if self.mqtt_version == "5.0" else None,
            )
            if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
                self._room.clear()
                await self._room.wait()
                continue
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                raise ConnectionError(f"publish failed: {paho.error_string(info.rc)}")
            if message.request_id is None:
                return None
            if info.is_published():
                done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
                done.set_result([])
                return done
            return self._publishes.expect(info.mid)

    def _shared(self, topic_filter: str) -> str:
        """``topic_filter`` in the configured shared-subscription group, if any."""
        share = self.config.share_group
        return f"{SHARE_PREFIX}{share}/{topic_filter}" if share else topic_filter

    async def subscribe(self, filters: dict[str, int]) -> list[int]:
        topics = [(self._shared(f), qos) for f, qos in filters.items()]
        return await self._request(lambda c: c.subscribe(topics))

    async def unsubscribe(self, filters: list[str]) -> list[int]:
        topics = [self._shared(f) for f in filters]
        return await self._request(lambda c: c.unsubscribe(topics))

    async def _request(self, call: Callable[[paho.Client], tuple[int, int | None]]) -> list[int]:
        client = self._socket.client
        if client is None or not self.connected:
            raise ConnectionError("the MQTT link is down")
        rc, mid = call(client)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"request failed: {paho.error_string(rc)}")
        future = self._requests.expect(mid)
        async with asyncio.timeout(30):
            return await future

    def open_connections(self) -> int:
        return int(self.connected)

    def describe(self, summary: Summary) -> None:
        config = self.config
        share = f", shared group {config.share_group}" if config.share_group else ""
        summary.add("MQTT devices", f"{config.safe_url()} (bridged broker{share})")
        if config.password and not config.tls and not is_loopback(config.host):
            summary.warn(
                f"the bridge logs in to {config.host} without TLS: its password crosses the "
                "network in clear (use mqtts://)"
            )

    def pause_reading(self) -> None:
        self._socket.pause()

    def resume_reading(self) -> None:
        self._socket.resume()

    # -- paho callbacks (on the loop thread, from loop_read/loop_write) -----

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((reason, bool(flags.session_present)))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if client is not self._socket.client:
            return
        was_connected, self.connected = self.connected, False
        self._down.set()
        self._generation += 1
        self._requests.fail_all(ConnectionError(f"the MQTT link went down ({reason})"))
        self._room.set()
        if was_connected and not self._stopping:
            logger.warning("lost the MQTT broker %s (%s)", self.config.safe_url(), reason)
            assert self._sink is not None
            self._sink.link_changed(link_event("down", str(reason)))
            self._lost.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._socket.messages_read += 1
        incoming = Incoming(
            msg.topic,
            msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload),
            msg.qos,
            bool(msg.retain),
            bool(msg.dup),
            properties_to_dict(getattr(msg, "properties", None)),
        )
        ack = None
        if msg.qos:
            generation, mid, qos = self._generation, msg.mid, msg.qos

            def ack() -> None:
                if generation == self._generation and client is self._socket.client:
                    client.ack(mid, qos)

        assert self._sink is not None
        self._sink.deliver(incoming, ack)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self._publishes.answer(mid, [reason.value])
        self._room.set()

    def _on_suback(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        codes = reasons if isinstance(reasons, list) else [reasons]
        self._requests.answer(mid, [code.value for code in codes])
