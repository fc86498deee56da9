"""Turning channels_redis-style ``hosts`` entries into redis-py clients.

``hosts`` is a list; each entry is one of (exactly as channels_redis accepts them):

* a URL string: ``"redis://:password@host:6379/0"``, ``"rediss://host:6380"`` (TLS),
  ``"unix:///run/redis.sock"``;
* a ``(host, port)`` tuple or list;
* a dict of redis-py connection keywords, optionally with ``"address"`` (a URL), or
  with ``"sentinels"`` (``[(host, port), ...]``), ``"master_name"`` and optional
  ``"sentinel_kwargs"`` for a Sentinel-managed master.

Every client is built with the same safety defaults, because redis-py's own defaults
break a channel layer: redis-py 8 gives every socket a 5 s read timeout, which aborts
an idle blocking receive (channels_redis#422), retries commands with backoff for many
seconds while Redis is down (a send must fail fast instead), and caps a pool at 100
connections (every blocked receiver holds one). Blocking reads here pass an explicit
"no timeout" per read, so the socket timeout still bounds ordinary commands.

A command sent through these clients (subscriptions, ``flush``'s SCAN) that fails
with a connection error is retried once, at once, on a fresh connection: a pooled
connection left stale by a Redis restart then succeeds, while a Redis that is really
down still fails fast (the retry is refused too). Timeouts are never retried (the
command may have run). The layers' hot path (:mod:`.multiplexer`) does not retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

HostConfig = dict[str, Any]

#: Applied unless the host entry sets the same keyword.
CLIENT_DEFAULTS: Mapping[str, Any] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
    "max_connections": 10_000,
}


def decode_hosts(hosts: object) -> list[HostConfig]:
    """Normalise the ``hosts`` setting into one keyword dict per host."""
    if not hosts:
        return [{"address": "redis://localhost:6379"}]
    if isinstance(hosts, str | bytes):
        raise ValueError(
            "CHANNEL_LAYERS hosts must be a list of Redis hosts, even if there is only one"
        )
    if not isinstance(hosts, Sequence):
        raise ValueError(f"CHANNEL_LAYERS hosts must be a list, not {type(hosts).__name__}")
    decoded: list[HostConfig] = []
    for entry in hosts:
        if isinstance(entry, Mapping):
            decoded.append(dict(entry))
        elif isinstance(entry, tuple | list) and len(entry) == 2:
            decoded.append({"host": entry[0], "port": int(entry[1])})
        elif isinstance(entry, str):
            decoded.append({"address": entry})
        else:
            raise ValueError(f"Cannot understand Redis host entry {entry!r}")
    return decoded


def describe_host(host: HostConfig) -> str:
    """A log-safe name for a host entry: never includes passwords."""
    if "master_name" in host:
        return f"sentinel master {host['master_name']!r}"
    if "address" in host:
        address = str(host["address"])
        scheme, sep, rest = address.partition("://")
        if sep and "@" in rest:
            rest = rest.split("@", 1)[1]
        return f"{scheme}://{rest}" if sep else address
    return f"{host.get('host', 'localhost')}:{host.get('port', 6379)}"


def _client_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {**CLIENT_DEFAULTS, **options}
    kwargs.setdefault("retry", Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    return kwargs


def make_client(host: HostConfig) -> Redis:
    """A redis-py asyncio client for one (standalone or Sentinel-managed) host."""
    options = dict(host)
    if "master_name" in options:
        master_name = options.pop("master_name")
        sentinels = options.pop("sentinels")
        sentinel_kwargs = options.pop("sentinel_kwargs", None) or {}
        sentinel_kwargs = {**_client_kwargs({}), **sentinel_kwargs}
        sentinel_kwargs.pop("max_connections", None)
        sentinel = Sentinel(
            [tuple(address) for address in sentinels], sentinel_kwargs=sentinel_kwargs
        )
        pool = SentinelConnectionPool(master_name, sentinel, **_client_kwargs(options))
        return Redis(connection_pool=pool)
    if "address" in options:
        address = options.pop("address")
        return Redis.from_url(address, **_client_kwargs(options))
    return Redis(**_client_kwargs(options))


def make_cluster_client(hosts: Sequence[HostConfig]) -> RedisCluster:
    """A Redis Cluster client; every host is a startup node, the first gives options.

    Options (password, TLS, timeouts) come from the first entry; the others only
    contribute their address.
    """
    nodes = [ClusterNode(*_address(host)) for host in hosts]
    options = {k: v for k, v in hosts[0].items() if k not in ("address", "host", "port")}
    if "address" in hosts[0]:
        return RedisCluster.from_url(
            str(hosts[0]["address"]), startup_nodes=nodes, **_client_kwargs(options)
        )
    return RedisCluster(startup_nodes=nodes, **_client_kwargs(options))


def _address(host: HostConfig) -> tuple[str, int]:
    if "address" in host:
        url = urlsplit(str(host["address"]))
        return url.hostname or "localhost", url.port or 6379
    return str(host.get("host", "localhost")), int(host.get("port", 6379))
