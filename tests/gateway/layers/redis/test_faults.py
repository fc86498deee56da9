"""Redis crashes and restarts under the Redis layers: what is lost, what recovers.

The servers run without persistence, so a restart comes back empty, like a crash
of a cache-style Redis. Kills and restarts run in a thread so the event loop keeps
running meanwhile, as it would in a real process. The layers promise at-most-once
delivery: what Redis held at the crash is gone; sends wait up to ``outage_timeout``
for Redis to come back; the group memberships this process made are re-added; and
everything sent after recovery arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.exceptions import ChannelLayerUnavailable
from gateway.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from gateway.layers.redis.errors import UNREACHABLE, raise_if_cancelling, translate_errors
from tests.gateway.layers.redis_servers import RedisServer, redis_servers

pytestmark = [pytest.mark.redis]

WAIT = 10.0
#: How long sends wait for Redis in these tests (the default is 10 s).
OUTAGE = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_servers(tmp_path, 1) as (server,):
        yield server


@pytest.fixture
async def layer(server: RedisServer) -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=[server.url], prefix="faults", outage_timeout=OUTAGE)
    yield layer
    await layer.close()


async def collect(layer: RedisChannelLayer, channel: str, into: list[int], count: int) -> None:
    while len(into) < count:
        into.append((await layer.receive(channel))["n"])


async def test_receivers_survive_a_restart_and_get_everything_sent_after_it(
    layer: RedisChannelLayer, server: RedisServer
) -> None:
    local = await layer.new_channel()
    got_normal: list[int] = []
    got_local: list[int] = []
    for n in range(10):
        await layer.send("stream", {"type": "test.message", "n": n})
        await layer.send(local, {"type": "test.message", "n": n})
    async with asyncio.timeout(WAIT):
        await collect(layer, "stream", got_normal, 10)
        await collect(layer, local, got_local, 10)
    # Receivers wait through the outage.
    receivers = [
        asyncio.create_task(collect(layer, "stream", got_normal, 20)),
        asyncio.create_task(collect(layer, local, got_local, 20)),
    ]

    await asyncio.to_thread(server.kill)
    with pytest.raises(ChannelLayerUnavailable, match="unavailable"):
        async with asyncio.timeout(WAIT):  # fails after outage_timeout, never hangs
            await layer.send("stream", {"type": "test.message", "n": -1})
    await asyncio.to_thread(server.start)

    for n in range(10, 20):
        await layer.send("stream", {"type": "test.message", "n": n})
        await layer.send(local, {"type": "test.message", "n": n})
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*receivers)
    assert got_normal == list(range(20))
    assert got_local == list(range(20))
    assert layer.stats.reconnects >= 2  # each receive loop counted its own recovery


async def test_what_redis_held_at_the_crash_is_lost_but_memberships_come_back(
    layer: RedisChannelLayer, server: RedisServer
) -> None:
    for n in range(5):
        await layer.send("unread", {"type": "test.message", "n": n})
    await layer.group_add("room", "unread")
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    # Queued messages lived in Redis: gone. The membership this process made is
    # re-added before sends go on, so the group message arrives.
    await layer.group_send("room", {"type": "test.message", "n": "group"})
    await layer.send("unread", {"type": "test.message", "n": "after"})
    async with asyncio.timeout(WAIT):
        assert (await layer.receive("unread"))["n"] == "group"
        assert (await layer.receive("unread"))["n"] == "after"
    with server.client() as client:
        assert client.zrange("faults:{room}:g", 0, -1) == [b"unread"]


async def test_a_discarded_membership_is_not_restored(
    layer: RedisChannelLayer, server: RedisServer
) -> None:
    await layer.group_add("room", "stays")
    await layer.group_add("room", "leaves")
    await layer.group_discard("room", "leaves")
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    await layer.group_send("room", {"type": "test.message", "n": 1})
    with server.client() as client:
        assert client.zrange("faults:{room}:g", 0, -1) == [b"stays"]


async def test_a_send_during_a_short_outage_waits_and_is_delivered(
    server: RedisServer,
) -> None:
    layer = RedisChannelLayer(hosts=[server.url], prefix="faults", outage_timeout=WAIT)
    try:
        await layer.send("patient", {"type": "test.message", "n": 0})
        await asyncio.to_thread(server.kill)
        sending = asyncio.create_task(layer.send("patient", {"type": "test.message", "n": 1}))
        await asyncio.sleep(0.3)  # an outage of at least this long
        assert not sending.done()
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(WAIT):
            await sending
            assert (await layer.receive("patient"))["n"] == 1  # n=0 died with Redis
        assert layer.stats.unavailable == 0
    finally:
        await layer.close()


async def test_an_outage_is_logged_once_with_the_count_of_messages_lost(
    layer: RedisChannelLayer, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await layer.send("counted", {"type": "test.message"})
    caplog.set_level(logging.INFO, logger="gateway.layers.redis")
    await asyncio.to_thread(server.kill)
    failures = 0
    for n in range(3):
        try:
            await layer.group_send("room", {"type": "test.message", "n": n})
        except ChannelLayerUnavailable:
            failures += 1
    assert failures == 3
    assert layer.stats.unavailable == 3
    await asyncio.to_thread(server.start)
    await layer.send("counted", {"type": "test.message"})
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert "is unreachable" in lines[0]
    assert "still unreachable" in lines[1]
    assert "is back after" in lines[2]
    assert "3 messages could not be sent" in lines[2]
    assert not any(record.exc_info for record in caplog.records)


async def test_a_receiver_waiting_through_the_outage_is_not_wedged(
    layer: RedisChannelLayer, server: RedisServer
) -> None:
    waiting = asyncio.create_task(layer.receive("idle"))
    await asyncio.to_thread(server.kill)
    with pytest.raises(ChannelLayerUnavailable):
        await layer.send("idle", {"type": "test.message"})
    assert not waiting.done()
    await asyncio.to_thread(server.start)
    await layer.send("idle", {"type": "test.message"})  # works as soon as Redis is back
    async with asyncio.timeout(WAIT):
        assert await waiting == {"type": "test.message"}


async def test_pubsub_resubscribes_and_fires_callbacks_after_a_restart(
    server: RedisServer,
) -> None:
    events: list[str] = []
    reconnected = asyncio.Event()
    channel = ""
    layer: RedisPubSubChannelLayer  # made below, with this callback

    async def on_reconnect() -> None:
        # Group memberships lived in the Redis that restarted: a consumer re-joins.
        await layer.group_add("room", channel)
        events.append("reconnect")
        reconnected.set()

    layer = RedisPubSubChannelLayer(
        hosts=[server.url],
        prefix="faults",
        outage_timeout=OUTAGE,
        on_disconnect=lambda: events.append("disconnect"),
        on_reconnect=on_reconnect,
    )
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, {"type": "test.message", "n": 1})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive(channel))["n"] == 1

        await asyncio.to_thread(server.kill)
        with pytest.raises(ChannelLayerUnavailable):
            await layer.send(channel, {"type": "test.message", "n": 2})
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(WAIT):
            await reconnected.wait()
        assert events == ["disconnect", "reconnect"]
        assert layer.stats.reconnects == 1

        await layer.send(channel, {"type": "test.message", "n": 3})
        await layer.group_send("room", {"type": "test.message", "n": 4})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive(channel))["n"] == 3
            assert (await layer.receive(channel))["n"] == 4
    finally:
        await layer.close()


class LayerLog(logging.Handler):
    """Collects the layer's records from ``level`` up and lets a test await them."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.loop = asyncio.get_running_loop()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.loop.call_soon_threadsafe(self.seen.set)

    async def reach(self, count: int) -> None:
        """Return once ``count`` records have been collected."""
        while len(self.records) < count:
            self.seen.clear()
            await self.seen.wait()


@contextlib.contextmanager
def layer_log(level: int) -> Iterator[LayerLog]:
    handler = LayerLog(level)
    logger = logging.getLogger("gateway.layers.redis")
    previous = logger.level
    logger.setLevel(min(level, logger.getEffectiveLevel()))
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
async def error_log() -> AsyncIterator[LayerLog]:
    with layer_log(logging.ERROR) as handler:
        yield handler


async def test_a_receive_loop_refused_by_redis_says_so_and_resumes_when_allowed(
    layer: RedisChannelLayer, server: RedisServer, error_log: LayerLog
) -> None:
    # Not an outage: Redis answers, but refuses the pop (an ACL). Every channel of
    # the process waits on that loop, so it must say so, and not end.
    admin = redis.Redis(port=server.port)
    channel = await layer.new_channel()
    admin.acl_setuser("default", enabled=True, reset_keys=False, commands=["-blmpop"])
    try:
        waiting = asyncio.create_task(layer.receive(channel))
        async with asyncio.timeout(WAIT):
            await error_log.seen.wait()
        first = error_log.records[0]
        assert "Receiving specific." in first.getMessage()
        assert first.exc_info is not None
        await layer.send(channel, {"type": "test.message", "n": 1})
        assert not waiting.done()
    finally:
        admin.acl_setuser("default", enabled=True, reset_keys=False, commands=["+blmpop"])
    async with asyncio.timeout(WAIT):
        assert (await waiting)["n"] == 1
    assert sum(record.exc_info is not None for record in error_log.records) == 1


async def test_a_pubsub_listener_refused_by_redis_says_so_and_resumes_when_allowed(
    server: RedisServer, error_log: LayerLog
) -> None:
    admin = redis.Redis(port=server.port)
    subscribed_again = asyncio.Event()
    layer = RedisPubSubChannelLayer(
        hosts=[server.url],
        prefix="faults",
        outage_timeout=OUTAGE,
        on_reconnect=subscribed_again.set,
    )
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "test.message", "n": 1})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive(channel))["n"] == 1
        admin.acl_setuser("default", enabled=True, reset_keys=False, commands=["-subscribe"])
        try:
            admin.client_kill_filter(_type="pubsub")  # its re-subscribe is refused
            async with asyncio.timeout(WAIT):
                await error_log.seen.wait()
            assert "pub/sub" in error_log.records[0].getMessage()
        finally:
            admin.acl_setuser("default", enabled=True, reset_keys=False, commands=["+subscribe"])
        async with asyncio.timeout(WAIT):
            await subscribed_again.wait()
            await layer.send(channel, {"type": "test.message", "n": 2})
            assert (await layer.receive(channel))["n"] == 2
    finally:
        await layer.close()


async def test_a_hung_redis_makes_sends_fail_instead_of_hanging(server: RedisServer) -> None:
    """socket_timeout bounds every command, also on the shared pipelined connection."""
    layer = RedisChannelLayer(hosts=[{"address": server.url, "socket_timeout": 0.2}])
    process = server.process
    assert process is not None
    try:
        await layer.send("hung", {"type": "test.message", "n": 1})
        process.send_signal(signal.SIGSTOP)  # Redis stops answering, sockets stay open
        try:
            with pytest.raises(ChannelLayerUnavailable, match="no reply in"):
                async with asyncio.timeout(WAIT):
                    await layer.send("hung", {"type": "test.message", "n": 2})
        finally:
            process.send_signal(signal.SIGCONT)
        await layer.send("hung", {"type": "test.message", "n": 3})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive("hung"))["n"] == 1
            # n=2 may or may not have been applied: the layer cannot know (at most once).
            assert (await layer.receive("hung"))["n"] in (2, 3)
    finally:
        await layer.flush()
        await layer.close()


async def test_a_cancellation_turned_into_a_connection_error_is_still_a_cancellation() -> None:
    """What the receive loops do with a connection error: retry it, unless their task is
    being cancelled (a client library that disconnects on cancellation may raise one)."""
    retried = asyncio.Event()

    async def receive_loop() -> None:
        while True:
            try:
                await asyncio.sleep(3600)  # a blocking pop
            except asyncio.CancelledError as cancelled:
                error = RedisConnectionError("Connection closed by server.")
                try:
                    raise error from cancelled  # as the library reports it
                except UNREACHABLE as exc:
                    raise_if_cancelling(exc)
                    retried.set()  # an outage: the loop goes round again

    task = asyncio.create_task(receive_loop())
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(WAIT):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not retried.is_set()


async def test_a_cancellation_a_client_library_swallowed_is_raised_after_the_call() -> None:
    """redis-py may catch a cancellation and go on to another node; the call returns."""
    arrived = asyncio.Event()

    async def library_call() -> str:
        try:
            arrived.set()
            await asyncio.sleep(3600)  # asking the first node
        except asyncio.CancelledError:
            pass  # the next node answers
        return "slots"

    async def caller() -> str:
        with translate_errors("test"):
            return await library_call()

    task = asyncio.create_task(caller())
    async with asyncio.timeout(WAIT):
        await arrived.wait()
    task.cancel()
    async with asyncio.timeout(WAIT):
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_sends_cancelled_while_their_writes_wait_fail_no_other_send(
    server: RedisServer,
) -> None:
    """Sends cancelled while Redis cannot take their bytes stop only themselves.

    Every send of an event loop shares one connection. redis-py drops a connection
    whose write is cancelled, which failed every other send in flight on it (and
    asyncio reported the cancelled send's failed reply as "Future exception was
    never retrieved", seen at shutdown).
    """
    loop = asyncio.get_running_loop()
    unseen: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unseen.append(context))
    layer = RedisChannelLayer(hosts=[server.url], prefix="cancelled-writes", capacity=1000)
    process = server.process
    assert process is not None
    try:
        await layer.send("warm", {"type": "test.message"})
        process.send_signal(signal.SIGSTOP)  # its socket buffers fill, writes wait
        try:
            big = {"type": "test.message", "blob": b"x" * 1_000_000}
            sends = [asyncio.create_task(layer.send("stuck", big)) for _ in range(30)]
            others = [
                asyncio.create_task(layer.send("bystander", {"type": "test.message", "n": n}))
                for n in range(5)
            ]
            for _ in range(20):
                await asyncio.sleep(0)  # every send gets as far as it can
            for send in sends:
                send.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
        finally:
            process.send_signal(signal.SIGCONT)
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*others)  # each one delivered, none failed
            assert [(await layer.receive("bystander"))["n"] for _ in range(5)] == [*range(5)]
            await layer.send("after", {"type": "test.message", "n": 1})
            assert (await layer.receive("after"))["n"] == 1
        del sends
        gc.collect()
        await asyncio.sleep(0)
        assert unseen == []
    finally:
        loop.set_exception_handler(previous)
        await layer.flush()
        await layer.close()


async def test_a_receive_whose_ack_could_not_reach_redis_frees_its_place_later(
    server: RedisServer,
) -> None:
    """A channel's count in Redis goes down when its message is received (an ack). An
    ack whose call failed before reaching Redis is carried by a later call: lost, it
    would leave the channel looking fuller than it is for good (a family in use never
    expires), and sends it has room for would be refused."""
    layer = RedisChannelLayer(hosts=[server.url], prefix="acks", capacity=2)
    admin = redis.Redis(port=server.port)
    try:
        channel = await layer.new_channel()
        for n in (1, 2):
            await layer.send(channel, {"type": "test.message", "n": n})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive(channel))["n"] == 1  # its first pop took both
        # Redis stays up with its counts but takes no new connection, and the layer's
        # connections are cut: its calls fail before their commands reach Redis.
        admin.config_set("maxclients", 1)
        admin.client_kill_filter(_type="normal", skipme=True)
        try:
            with layer_log(logging.DEBUG) as failures:
                async with asyncio.timeout(WAIT):
                    assert (await layer.receive(channel))["n"] == 2  # from this process
                    # Its ack goes out with the receive loop's next pop (or on its own,
                    # if that pop is under way): wait until two calls after it failed.
                    await failures.reach(len(failures.records) + 2)
        finally:
            admin.config_set("maxclients", 10000)
        async with asyncio.timeout(WAIT):
            for n in (3, 4):  # room for both again: the channel is empty
                await layer.send(channel, {"type": "test.message", "n": n})
            assert [(await layer.receive(channel))["n"] for _ in range(2)] == [3, 4]
    finally:
        admin.close()
        await layer.flush()
        await layer.close()
