"""Redis connections per event loop: shards, blocking reads, errors, backoff.

redis-py connections belong to the event loop that opened them. ``async_to_sync``
runs each call in a fresh loop that it closes afterwards, so a layer keeps one set of
clients per loop (:class:`LoopRegistry`) and closes them when that loop closes. Reusing
a client from a closed loop is what makes channels_redis fail with "Event loop is
closed" (channels_redis#332).

Blocking pops (``BLPOP``/``BLMPOP``) run on a connection of their own and read
without a socket timeout. Cancelling one is made safe with ``CLIENT UNBLOCK``: the
server is told to stop waiting, the pending reply is read, and anything Redis popped
in the meantime is pushed back to the head of its list, so a cancelled receive never
loses a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, ResponseError, TryAgainError

from gateway.exceptions import ChannelLayerUnavailable

from .availability import Availability
from .config import HostConfig, describe_host, make_client, make_cluster_client
from .errors import UNREACHABLE, translate_errors
from .multiplexer import Multiplexer

Requeue = Callable[[Any], Awaitable[None]]
#: What a layer does when a shard's Redis answers again after an outage.
Recovered = Callable[["Shard"], Awaitable[None]]


class Lease:
    """A connection borrowed for one blocking command."""

    def __init__(
        self, connection: AbstractConnection, give_back: Callable[[AbstractConnection], Any]
    ) -> None:
        self.connection = connection
        self._give_back = give_back

    async def release(self) -> None:
        result = self._give_back(self.connection)
        if asyncio.iscoroutine(result):
            await result


async def close_client(client: Redis) -> None:
    """Close a client, its pool and, for Sentinel, its clients of each sentinel."""
    await client.aclose()
    pool = client.connection_pool
    await pool.disconnect()
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


class Shard:
    """One configured host (standalone or Sentinel) in one event loop.

    Non-blocking commands go through the shard's :class:`Multiplexer`; blocking
    pops borrow connections of their own from the client's pool (:meth:`lease`).
    """

    def __init__(self, host: HostConfig, on_recovered: Recovered) -> None:
        self.name = describe_host(host)
        self.redis = make_client(host)
        self.availability = self._availability(on_recovered)
        pool = self.redis.connection_pool
        timeout = pool.connection_kwargs.get("socket_timeout") or 5.0
        self.mux = Multiplexer(pool, self.name, timeout, self.availability.lost)

    def _availability(self, on_recovered: Recovered) -> Availability:
        async def recovered() -> None:
            await on_recovered(self)

        return Availability(self.name, lambda: self.execute("PING"), recovered)

    def bucket(self, tag: str) -> object:
        """Targets in one bucket can be handled by one script call."""
        return None

    async def refresh(self) -> None:
        """Re-learn where keys live (after a cluster said a slot moved)."""

    async def execute(self, *args: Any) -> Any:
        try:
            return await self.mux.execute(*args)
        except ChannelLayerUnavailable as exc:
            self.availability.lost(exc)
            raise

    async def publish(self, topic: str, message: bytes) -> None:
        await self.execute("PUBLISH", topic, message)

    async def push_back(self, key: str, entries: Sequence[bytes], ttl_ms: int) -> None:
        """Put popped ``entries`` back at the head of ``key``, in order, with a TTL.

        The list may have been emptied (and so deleted) by the pop: without the TTL a
        message nobody receives would stay forever.
        """
        await asyncio.gather(
            self.execute("LPUSH", key, *reversed(entries)), self.execute("PEXPIRE", key, ttl_ms)
        )

    async def lease(self, key: str) -> Lease:
        pool = self.redis.connection_pool
        return Lease(await pool.get_connection(), pool.release)

    async def delete_matching(self, pattern: str) -> None:
        """Delete every key matching ``pattern`` (SCAN, then UNLINK in batches)."""
        with translate_errors(self.name):
            batch: list[bytes] = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    await self.redis.unlink(*batch)
                    batch = []
            if batch:
                await self.redis.unlink(*batch)

    async def aclose(self) -> None:
        await self.availability.aclose()
        await self.mux.aclose()
        await close_client(self.redis)


class ClusterShard(Shard):
    """A Redis Cluster: commands are routed by key slot, blocking reads by node."""

    def __init__(self, hosts: Sequence[HostConfig], on_recovered: Recovered) -> None:
        self.name = "cluster " + ", ".join(describe_host(host) for host in hosts)
        self.cluster = make_cluster_client(hosts)
        self.availability = self._availability(on_recovered)
        self._discovery: asyncio.Future[Any] | None = None

    def bucket(self, tag: str) -> object:
        return key_slot(tag.encode())

    async def execute(self, *args: Any) -> Any:
        try:
            with translate_errors(self.name):
                return await self.cluster.execute_command(*args)
        except ChannelLayerUnavailable as exc:
            self.availability.lost(exc)
            raise

    async def publish(self, topic: str, message: bytes) -> None:
        """PUBLISH from the node serving ``topic``'s slot, never a random one.

        A cluster forwards each publish to every node; publishes of one topic made
        from one node reach a subscriber in order, from different nodes they need not.
        """
        try:
            await self._discover()
            with translate_errors(self.name):
                node = self.cluster.get_node_from_key(topic)
                await self.cluster.execute_command("PUBLISH", topic, message, target_nodes=node)
        except ChannelLayerUnavailable as exc:
            self.availability.lost(exc)
            raise

    async def _discover(self) -> None:
        """Learn the cluster's slots, in a task a cancelled caller leaves running.

        redis-py turns a cancel that lands while it asks a node for the slots into
        a connection error, retries and moves on to the next node: the cancelled
        caller would wait a socket timeout or more. Here it leaves at once, and the
        discovery goes on for whoever asks next. Once the slots are known this
        returns without waiting.
        """
        if self._discovery is None or self._discovery.done():
            self._discovery = asyncio.ensure_future(self.cluster.initialize())
            self._discovery.add_done_callback(_retrieve)
        with translate_errors(self.name):
            await asyncio.shield(self._discovery)

    async def lease(self, key: str) -> Lease:
        await self._discover()
        node = self.cluster.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"No cluster node serves key {key!r}")
        release: Callable[[Any], None] = node.release
        return Lease(node.acquire_connection(), release)

    async def refresh(self) -> None:
        with translate_errors(self.name):
            await self.cluster.nodes_manager.initialize()

    async def delete_matching(self, pattern: str) -> None:
        with translate_errors(self.name):
            async for key in self.cluster.scan_iter(match=pattern, count=1000):
                await self.cluster.unlink(key)

    async def aclose(self) -> None:
        await self.availability.aclose()
        if self._discovery is not None:
            # redis-py may carry on past the cancel, to the next node; a node
            # that never answers holds it for one socket timeout.
            self._discovery.cancel()
            await asyncio.gather(self._discovery, return_exceptions=True)
        await self.cluster.aclose()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: the callers that wanted it may all have left."""
    if not future.cancelled():
        future.exception()


def make_shards(hosts: Sequence[HostConfig], cluster: bool, on_recovered: Recovered) -> list[Shard]:
    if cluster:
        return [ClusterShard(hosts, on_recovered)]
    return [Shard(host, on_recovered) for host in hosts]


class BlockingReader:
    """Runs blocking pops and makes their cancellation lossless.

    Cleanup after a cancellation runs in tasks tracked here, so closing the loop
    waits for them rather than destroying them half-way.
    """

    def __init__(self) -> None:
        self.cleanups: set[asyncio.Task[None]] = set()

    async def call(
        self,
        shard: Shard,
        key: str,
        command: Sequence[Any],
        requeue: Requeue,
        prelude: Sequence[Sequence[Any]] = (),
        prelude_done: asyncio.Future[None] | None = None,
        lease: Lease | None = None,
    ) -> tuple[list[Any], Any]:
        """Send ``command`` (blocking on ``key``); return (prelude replies, its reply).

        ``prelude`` commands go out in the same write, before it (their error
        replies are returned, not raised). ``requeue`` receives the reply of a pop
        that completed after its caller was cancelled, to put the popped entries back.
        ``prelude_done`` is resolved once the prelude's replies have been read.
        With ``lease``, that connection is used and kept (a loop popping the same
        key over and over); otherwise one is borrowed for this call. Either way a
        connection that failed is disconnected (it reconnects on next use).
        """
        kept = lease is not None
        if lease is None:
            with translate_errors(shard.name):
                lease = await shard.lease(key)
        client_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        exchange = asyncio.ensure_future(
            self._exchange(lease.connection, prelude, command, client_id, prelude_done)
        )
        try:
            with translate_errors(shard.name):
                result = await asyncio.shield(exchange)
        except (AskError, TryAgainError) as exc:  # MOVED/ASK: a cluster slot migrates
            if not kept:
                await lease.release()
            await shard.refresh()
            raise ChannelLayerUnavailable(f"{shard.name}: {exc}; retrying") from exc
        except asyncio.CancelledError:
            cleanup = asyncio.ensure_future(
                self._unblock(shard, key, lease, client_id, exchange, requeue, kept)
            )
            self.cleanups.add(cleanup)
            cleanup.add_done_callback(self.cleanups.discard)
            raise
        except BaseException:
            await self._discard(lease, kept)
            raise
        if not kept:
            await lease.release()
        return result

    @staticmethod
    async def _exchange(
        connection: AbstractConnection,
        prelude: Sequence[Sequence[Any]],
        command: Sequence[Any],
        client_id: asyncio.Future[int],
        prelude_done: asyncio.Future[None] | None,
    ) -> tuple[list[Any], Any]:
        """Run ``prelude``, learn the connection's id (for ``CLIENT UNBLOCK``), block.

        Everything goes out in one write, so this is still one round trip.
        """
        replies: list[Any] = []
        try:
            commands = [*map(tuple, prelude), ("CLIENT", "ID"), tuple(command)]
            await connection.send_packed_command(connection.pack_commands(commands))
            for _ in prelude:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:
                    replies.append(error)
            if prelude_done is not None and not prelude_done.done():
                prelude_done.set_result(None)
            client_id.set_result(await connection.read_response())
        except BaseException as exc:
            client_id.set_exception(exc)
            client_id.exception()  # retrieved: the caller sees exc through the exchange
            raise
        return replies, await connection.read_response(timeout=math.inf)

    @staticmethod
    async def _discard(lease: Lease, kept: bool = False) -> None:
        await lease.connection.disconnect()
        if not kept:
            await lease.release()

    async def _unblock(
        self,
        shard: Shard,
        key: str,
        lease: Lease,
        client_id: asyncio.Future[int],
        exchange: asyncio.Future[Any],
        requeue: Requeue,
        kept: bool,
    ) -> None:
        try:
            if not exchange.done():
                blocked_id = await client_id
                other = await shard.lease(key)
                try:
                    await other.connection.send_command("CLIENT", "UNBLOCK", blocked_id)
                    await other.connection.read_response()
                finally:
                    await other.release()
            _, result = await exchange
        except Exception:
            # The blocked connection or Redis itself is gone; so is anything it held.
            await self._discard(lease, kept)
            return
        if not kept:
            await lease.release()
        if result is not None:
            with contextlib.suppress(*UNREACHABLE):
                await requeue(result)

    async def aclose(self) -> None:
        if self.cleanups:
            await asyncio.gather(*self.cleanups, return_exceptions=True)


T = TypeVar("T")


class LoopRegistry(Generic[T]):
    """One ``T`` per running event loop, closed when its loop closes.

    The loop's ``close`` is wrapped (once per loop) so that resources opened by code
    run through ``async_to_sync`` or ``asyncio.run`` are released before the loop
    disappears, instead of leaking sockets or being reused from another loop.
    """

    def __init__(self, factory: Callable[[], T], closer: Callable[[T], Awaitable[None]]) -> None:
        self._factory = factory
        self._closer = closer
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        #: The last loop asked for and its item: the hot path is one loop.
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], T] | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        item = self._items.get(loop)
        if item is None:
            item = self._items[loop] = self._factory()
            _close_with_loop(loop, lambda: self._closer(item))
        self._last = (weakref.ref(loop), item)
        return item

    def current(self) -> T | None:
        """This loop's item, if it has one (never creates)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._items.get(loop)

    async def close_current(self) -> None:
        self._last = None
        item = self._items.pop(asyncio.get_running_loop(), None)
        if item is not None:
            await self._closer(item)


_loop_closers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, list[Callable[[], Awaitable[None]]]
] = weakref.WeakKeyDictionary()


def _close_with_loop(
    loop: asyncio.AbstractEventLoop, closer: Callable[[], Awaitable[None]]
) -> None:
    closers = _loop_closers.get(loop)
    if closers is None:
        closers = _loop_closers[loop] = []
        original_close = loop.close
        loop_ref = weakref.ref(loop)

        def close() -> None:
            current = loop_ref()
            pending = _loop_closers.pop(current, []) if current is not None else []
            if current is not None and not current.is_running() and not current.is_closed():
                for run_closer in pending:
                    with contextlib.suppress(Exception):
                        current.run_until_complete(run_closer())
            original_close()

        setattr(loop, "close", close)  # noqa: B010 - instance attribute wraps the method
    closers.append(closer)
