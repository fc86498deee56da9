"""gateway.layers.redis.keys: channels land on the same shard as with channels_redis."""

from __future__ import annotations

from gateway.layers.redis.keys import consistent_hash

#: Shard indexes channels_redis 4.3.0 picks (``channels_redis.utils._consistent_hash``)
#: for rings of 2, 3, 7 and 16 hosts: a project moving over keeps its channels on the
#: same Redis hosts.
CHANNELS_REDIS_SHARDS = {
    "a": [1, 2, 6, 14],
    "group.chat": [0, 0, 0, 0],
    "specific.abc!": [1, 2, 6, 14],
    "chat.room-42": [0, 1, 2, 6],
    "mqtt.publish": [0, 0, 1, 2],
    "telegram.send": [0, 1, 2, 5],
    "b": [1, 2, 6, 15],
}


def test_consistent_hash_matches_channels_redis_ring() -> None:
    for name, shards in CHANNELS_REDIS_SHARDS.items():
        assert [consistent_hash(name, ring) for ring in (2, 3, 7, 16)] == shards, name
    assert all(consistent_hash(name, 1) == 0 for name in CHANNELS_REDIS_SHARDS)
