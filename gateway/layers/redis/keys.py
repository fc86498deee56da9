"""Where things live in Redis: key names, shard choice and the queued-entry format.

Every key carries a Redis Cluster hash tag (the part in ``{}``), so each operation's
keys share one slot (Redis Cluster spec, "Hash tags"):

=============================  ===========================================  ==========
key                            holds                                        hash tag
=============================  ===========================================  ==========
``<prefix>:{<channel>}``       list of queued entries of a normal channel   channel
``<prefix>:{<family>}:q``      list: the inbox of a process-local family    family
``<prefix>:{<family>}:n``      hash: queued count per channel of a family   family
``<prefix>:{<group>}:g``       sorted set: group members by join time       group
``<prefix>:{<group>}:f``       hash: group members by family (an index)     group
=============================  ===========================================  ==========

A *family* is the part of a process-local name up to and including its ``!``
(``specific.3f2a!``): one inbox per receiving process, but capacity is counted per
channel in the ``:n`` hash, so one busy consumer never fills its neighbours'.

A queued entry is ``<deadline ms, 13 ASCII digits><channel>\\n<payload>``: the
deadline lets Lua and the receiver drop expired entries without decoding payloads,
and the channel name lets one inbox be demultiplexed in-process.
"""

from __future__ import annotations

import binascii

DEADLINE_DIGITS = 13


def consistent_hash(name: str, ring_size: int) -> int:
    """The shard index for ``name``: channels_redis' ring (CRC32 over 4096 points).

    Using the same function keeps a channels_redis user's host list meaning the same
    thing: a name maps to the same host position.
    """
    if ring_size == 1:
        return 0
    point = binascii.crc32(name.encode()) & 0xFFF
    return int(point / (4096 / ring_size))


def is_local(channel: str) -> bool:
    return "!" in channel


def family_of(channel: str) -> str:
    return channel[: channel.index("!") + 1]


def channel_key(prefix: str, channel: str) -> str:
    return f"{prefix}:{{{channel}}}"


def inbox_key(prefix: str, family: str) -> str:
    return f"{prefix}:{{{family}}}:q"


def counts_key(prefix: str, family: str) -> str:
    return f"{prefix}:{{{family}}}:n"


def group_key(prefix: str, group: str) -> str:
    return f"{prefix}:{{{group}}}:g"


def group_index_key(prefix: str, group: str) -> str:
    return f"{prefix}:{{{group}}}:f"


def encode_deadline(deadline_ms: int) -> bytes:
    return b"%013d" % deadline_ms


def encode_entry(deadline_ms: int, channels: str, payload: bytes) -> bytes:
    """A queued entry for ``channels`` (one name, or several joined by commas)."""
    return b"%013d%s\n%s" % (deadline_ms, channels.encode(), payload)


def decode_entry(entry: bytes) -> tuple[int, str, bytes]:
    """Split a queued entry into (deadline ms, channel, payload)."""
    newline = entry.index(b"\n", DEADLINE_DIGITS)
    return (
        int(entry[:DEADLINE_DIGITS]),
        entry[DEADLINE_DIGITS:newline].decode(),
        entry[newline + 1 :],
    )
