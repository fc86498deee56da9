"""Translating redis-py's failures into the layer's own exceptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from redis.exceptions import ClusterDownError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.exceptions import ChannelLayerUnavailable

#: Errors that mean "Redis cannot be reached right now".
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    OSError,
)


def raise_if_cancelling(error: BaseException) -> None:
    """Raise ``CancelledError`` if the current task is being cancelled.

    A client library may turn the cancellation of a read into a connection error
    (it disconnects, and what it raises says so); a loop that retries connection
    errors must not retry that one, or the cancelled receive would never end.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from error


class CommandNotSent(ChannelLayerUnavailable):
    """Redis could not be reached before the command was written: retrying is safe.

    Any other :class:`ChannelLayerUnavailable` may come after Redis ran the command
    (its reply was lost), so a retry could deliver a message twice.
    """


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn redis-py's connection failures into :class:`ChannelLayerUnavailable`.

    It also restores a cancellation redis-py swallowed. Cancelled while it fetches
    a cluster's topology, redis-py turns the cancellation into a connection error
    and tries the next node, so the call returns normally; a receive loop that
    went on would ignore the cancel and block for good. A cancel requested during
    the block and not delivered is raised on the way out.
    """
    requested = _cancel_requests()
    try:
        yield
    except ChannelLayerUnavailable:
        raise
    except UNREACHABLE as exc:
        raise ChannelLayerUnavailable(f"Redis at {where} is unavailable: {exc}") from exc
    except RedisClusterException as exc:
        raise ChannelLayerUnavailable(f"Redis Cluster at {where} failed: {exc}") from exc
    if _cancel_requests() > requested:
        raise asyncio.CancelledError(f"cancelled while talking to Redis at {where}")
