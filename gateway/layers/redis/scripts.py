"""The Lua scripts that make each layer operation one Redis round trip.

Scripts run atomically on the server (Redis ``EVAL``), so the capacity check and the
push cannot race with another sender. They are invoked by SHA (``EVALSHA``) and sent
in full only when the server does not know them yet (after a restart or failover).
All keys a script touches are passed in ``KEYS`` and, per call, share one cluster
slot (see :mod:`gateway.layers.redis.keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from .connection import Shard

#: Lua functions shared by the delivery scripts. ``result`` is {expired entries
#: trimmed, numbers of the members that were full...}; members are numbered from 1
#: in the order they are offered.
_DELIVERY_FUNCTIONS = """
local result = {0}
local member = 0

-- Offer the message to process-local channels of one family: each within its own
-- capacity (counted in the family's hash); the accepted ones share ONE inbox entry
-- listing them, comma-separated, which the receiving process fans out.
local function to_family(inbox, counts, channels, caps, deadline, body, ttl)
  local accepted, updates = {}, {}
  -- HMGET/HSET in slices: Lua's unpack is limited to a few thousand values.
  for first = 1, #channels, 1000 do
    local last = math.min(first + 999, #channels)
    local current = redis.call('HMGET', counts, unpack(channels, first, last))
    for i = first, last do
      member = member + 1
      local n = tonumber(current[i - first + 1]) or 0
      if n < caps[i] then
        accepted[#accepted + 1] = channels[i]
        updates[#updates + 1] = channels[i]
        updates[#updates + 1] = n + 1
      else
        result[#result + 1] = member
      end
    end
  end
  for first = 1, #updates, 1000 do
    redis.call('HSET', counts, unpack(updates, first, math.min(first + 999, #updates)))
  end
  if #accepted > 0 then
    redis.call('RPUSH', inbox, deadline .. table.concat(accepted, ',') .. '\\n' .. body)
    redis.call('PEXPIRE', inbox, ttl)
    redis.call('PEXPIRE', counts, ttl)
  end
end

-- Apply a receiving process's net counts, packed as 'channel=n,...': n messages
-- taken off the channel (received, expired, dropped) less the group messages it
-- admitted there (so n may be negative). One HMGET, one HSET and one HDEL per
-- slice, not one call per channel; counts that reach zero are removed.
local function apply_acks(counts, packed, ttl)
  local channels, taken = {}, {}
  for channel, count in string.gmatch(packed, '([^,=]+)=(%-?%d+)') do
    channels[#channels + 1] = channel
    taken[#taken + 1] = tonumber(count)
  end
  if #channels > 8 then
    -- A small hash is a flat list (listpack) that every field lookup scans, so one
    -- HMGET of a family's channels would cost their number squared. A value longer
    -- than hash-max-listpack-value (64 by default) makes Redis keep it a hash table;
    -- '~' is no valid channel name.
    redis.call('HSETNX', counts, '~', string.rep('~', 65))
  end
  for first = 1, #channels, 500 do
    local last = math.min(first + 499, #channels)
    local current = redis.call('HMGET', counts, unpack(channels, first, last))
    local left, gone = {}, {}
    for i = first, last do
      local n = (tonumber(current[i - first + 1]) or 0) - taken[i]
      if n > 0 then
        left[#left + 1] = channels[i]
        left[#left + 1] = n
      else
        gone[#gone + 1] = channels[i]
      end
    end
    if #left > 0 then
      redis.call('HSET', counts, unpack(left))
      redis.call('PEXPIRE', counts, ttl)
    end
    if #gone > 0 then redis.call('HDEL', counts, unpack(gone)) end
  end
end

-- Offer a group message to process-local members of one family: ONE inbox entry
-- for all of them, its member list marked by a leading comma. The receiving
-- process admits each member within its capacity (and counts it back here with its
-- acks), so the cost here does not grow with the members. False when the inbox
-- already holds ``limit`` unread entries: that process is not reading, and nobody
-- there gets the message (what bounds the memory a stalled process costs Redis).
local function group_to_family(inbox, csv, deadline, body, ttl, limit)
  if redis.call('LLEN', inbox) >= limit then return false end
  redis.call('RPUSH', inbox, deadline .. ',' .. csv .. '\\n' .. body)
  redis.call('PEXPIRE', inbox, ttl)
  return true
end

local function publish_family(topic, csv, deadline, body)
  redis.call('PUBLISH', topic, deadline .. csv .. '\\n' .. body)
end

-- Offer the message to a normal channel's list; when it is full, expired entries
-- at its head are trimmed first (they would never be delivered).
local function to_channel(key, channel, cap, deadline, body, ttl, now)
  member = member + 1
  local n = redis.call('LLEN', key)
  while n >= cap and n > 0 do
    if tonumber(string.sub(redis.call('LINDEX', key, 0), 1, 13)) > now then break end
    redis.call('LPOP', key)
    n = n - 1
    result[1] = result[1] + 1
  end
  if n < cap then
    redis.call('RPUSH', key, deadline .. channel .. '\\n' .. body)
    redis.call('PEXPIRE', key, ttl)
  else
    result[#result + 1] = member
  end
end
"""

#: Deliver one payload to several channels (one shard, one cluster slot).
#:
#: ARGV: now ms, key TTL ms, deadline (13 digits), payload, acks that decrement
#: ``KEYS[2]`` (a family's count hash) packed in one argument as
#: ``channel=count,channel=count`` ("" for none: one argument, not two per channel,
#: keeps a receive loop's ack batch cheap to encode), then the targets: a normal
#: channel is ("n", channel, capacity) and uses one key (its list); a process-local
#: family is ("l", m, channel1, capacity1, ...) and uses two keys (family inbox,
#: family counts), for a group message ("g", m, limit, channel1, ..., channelm) with
#: the same two keys (admitted by the receiving process), or, published, ("p", m,
#: channel1, ..., channelm) and one key: the topic. (Published through a key so a cluster always
#: runs it on the same node: publishes from one node reach subscribers in order.)
DELIVER = (
    _DELIVERY_FUNCTIONS
    + """
local now, ttl, deadline, body = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
apply_acks(KEYS[2], ARGV[5], ttl)
local a, k = 6, 1
while a <= #ARGV do
  if ARGV[a] == 'l' then
    local channels, caps = {}, {}
    for i = 1, tonumber(ARGV[a + 1]) do
      channels[i] = ARGV[a + 2 * i]
      caps[i] = tonumber(ARGV[a + 2 * i + 1])
    end
    a = a + 2 + 2 * #channels
    to_family(KEYS[k], KEYS[k + 1], channels, caps, deadline, body, ttl)
    k = k + 2
  elseif ARGV[a] == 'g' then
    local count, limit = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local csv = table.concat(ARGV, ',', a + 3, a + 2 + count)
    if not group_to_family(KEYS[k], csv, deadline, body, ttl, limit) then
      for i = 1, count do result[#result + 1] = member + i end
    end
    member = member + count
    a = a + 3 + count
    k = k + 2
  elseif ARGV[a] == 'p' then
    local count = tonumber(ARGV[a + 1])
    publish_family(KEYS[k], table.concat(ARGV, ',', a + 2, a + 1 + count), deadline, body)
    member = member + count
    a = a + 2 + count
    k = k + 1
  else
    to_channel(KEYS[k], ARGV[a + 1], tonumber(ARGV[a + 2]), deadline, body, ttl, now)
    a = a + 3
    k = k + 1
  end
end
return result
"""
)

#: Group membership is a sorted set (member -> join time, for group_expiry). An index
#: hash (family -> its members, comma-separated; "" -> normal channels), built from
#: it on demand, lets group_send address a whole receiving process in one step. Any
#: membership change just deletes the index (O(1)); the next group_send rebuilds it
#: (O(members)), so a stable group costs O(receiving processes) per message.
#: KEYS[1] = the sorted set, KEYS[2] = the index.
_GROUP_FUNCTIONS = """
-- Forget members that joined before ``oldest`` (ms).
local function expire_members(oldest)
  if redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest) > 0 then
    redis.call('DEL', KEYS[2])
  end
end
"""

#: group_add. ARGV: now ms, channel, group TTL ms.
GROUP_ADD = """
if redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: group_discard. ARGV: channel.
GROUP_DISCARD = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
end
return 1
"""

#: The current members (after dropping expired ones). ARGV: oldest valid join (ms).
GROUP_MEMBERS = (
    _GROUP_FUNCTIONS
    + """
expire_members(ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

#: group_send in one round trip, for a single standalone Redis whose layer has no
#: per-channel capacity patterns (every member has the default capacity). It
#: derives member keys itself, which standalone Redis allows; sharded and cluster
#: deployments use GROUP_MEMBERS + DELIVER instead. A whole process-local family
#: costs one inbox entry (or, published: ARGV[8] == "p", one PUBLISH), whatever its
#: number of members.
#: ARGV: now ms, key TTL ms, deadline, payload, oldest valid join time, key prefix,
#: capacity, "p" or "l", inbox limit (see ``group_to_family``). Returns {expired
#: entries trimmed, number of members, names of the members that were full...}.
GROUP_SEND = (
    _DELIVERY_FUNCTIONS
    + _GROUP_FUNCTIONS
    + """
local now, ttl, deadline, body = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local prefix, cap, publish = ARGV[6], tonumber(ARGV[7]), ARGV[8] == 'p'
local inbox_limit = tonumber(ARGV[9])

local function split(csv)
  local items = {}
  for item in string.gmatch(csv, '[^,]+') do items[#items + 1] = item end
  return items
end

expire_members(ARGV[5])
local index = redis.call('HGETALL', KEYS[2])
if #index == 0 then
  local families, order = {}, {}
  for _, channel in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local bang = string.find(channel, '!', 1, true)
    local family = bang and string.sub(channel, 1, bang) or ''
    if not families[family] then
      families[family] = {}
      order[#order + 1] = family
    end
    table.insert(families[family], channel)
  end
  for _, family in ipairs(order) do
    local csv = table.concat(families[family], ',')
    redis.call('HSET', KEYS[2], family, csv)
    index[#index + 1] = family
    index[#index + 1] = csv
  end
  local group_ttl = redis.call('PTTL', KEYS[1])
  if group_ttl > 0 then redis.call('PEXPIRE', KEYS[2], group_ttl) end
end

local offered = {}
for i = 1, #index, 2 do
  local family, csv = index[i], index[i + 1]
  if family == '' then
    for _, channel in ipairs(split(csv)) do
      offered[#offered + 1] = channel
      to_channel(prefix .. ':{' .. channel .. '}', channel, cap, deadline, body, ttl, now)
    end
  elseif publish then
    -- Never full here (the receiving process enforces capacity): not numbered.
    publish_family(prefix .. ':{' .. family .. '}:q', csv, deadline, body)
  elseif not group_to_family(prefix .. ':{' .. family .. '}:q', csv, deadline, body, ttl,
                             inbox_limit) then
    for _, channel in ipairs(split(csv)) do
      member = member + 1
      offered[#offered + 1] = channel
      result[#result + 1] = member
    end
  end
end
local named = {result[1], redis.call('ZCARD', KEYS[1])}
for i = 2, #result do
  named[#named + 1] = offered[result[i]]
end
return named
"""
)


@dataclass(frozen=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def run(self, shard: Shard, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await shard.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await shard.execute("EVAL", self.source, len(keys), *keys, *args)


deliver = Script(DELIVER)
group_send = Script(GROUP_SEND)
group_add = Script(GROUP_ADD)
group_discard = Script(GROUP_DISCARD)
group_members = Script(GROUP_MEMBERS)
