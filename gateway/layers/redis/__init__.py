"""Redis channel layers, configured with channels_redis' CONFIG keys.

* :class:`RedisChannelLayer`: queues in Redis; capacity, expiry and at-most-once
  delivery per channel; sharding, Redis Cluster, Sentinel, TLS, encryption.
* :class:`RedisPubSubChannelLayer`: Redis pub/sub; lowest latency, messages to a
  process that is not subscribed at that moment are lost.
"""

from .core import RedisChannelLayer
from .pubsub import RedisPubSubChannelLayer

__all__ = ["RedisChannelLayer", "RedisPubSubChannelLayer"]
