"""MQTT topic names, filters and gateway's named-segment patterns: pure functions.

MQTT 3.1.1 §4.7 (identical in 5.0 §4.7): levels are separated by ``/``; in a
*filter* ``+`` matches exactly one level and ``#`` (last level only) matches any
number of levels, including the parent level itself (``a/#`` matches ``a``);
a filter starting with a wildcard does not match topics starting with ``$``
(§4.7.2). gateway's *patterns* add named single-level segments, ``<name>``,
which match like ``+`` and capture the level. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHARE_PREFIX = "$share/"
_NAMED = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")


class InvalidTopic(ValueError):
    """A topic name, filter or pattern breaks the rules of MQTT 3.1.1 §4.7."""


def validate_topic_name(name: str) -> str:
    """Check a topic name that a PUBLISH may carry (no wildcards, §4.7.1, §4.7.3)."""
    if not name:
        raise InvalidTopic("a topic name must not be empty (MQTT 3.1.1 §4.7.3)")
    if "+" in name or "#" in name:
        raise InvalidTopic(f"topic name {name!r} contains a wildcard (MQTT 3.1.1 §4.7.1)")
    if "\x00" in name:
        raise InvalidTopic(f"topic name {name!r} contains U+0000 (MQTT 3.1.1 §4.7.3)")
    return name


def validate_filter(topic_filter: str) -> str:
    """Check a subscription filter (§4.7.1); ``$share/<group>/`` is accepted (5.0 §4.8.2)."""
    if not topic_filter:
        raise InvalidTopic("a topic filter must not be empty (MQTT 3.1.1 §4.7.3)")
    levels = strip_share(topic_filter).split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidTopic(f"{topic_filter!r}: '#' must be the whole last level (§4.7.1.2)")
        if "+" in level and level != "+":
            raise InvalidTopic(f"{topic_filter!r}: '+' must be a whole level (§4.7.1.3)")
    return topic_filter


def strip_share(topic_filter: str) -> str:
    """The filter inside a shared subscription ``$share/<group>/<filter>``, else itself."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return topic_filter
    group, sep, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not group or not sep or not inner:
        raise InvalidTopic(f"{topic_filter!r}: a shared subscription is $share/<group>/<filter>")
    return inner


def filter_matches(topic_filter: str, topic_name: str) -> bool:
    """Whether ``topic_name`` matches ``topic_filter`` (§4.7.1, §4.7.2)."""
    topic_filter = strip_share(topic_filter)
    if topic_name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    name_levels = topic_name.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(name_levels):
            return False
        if level != "+" and level != name_levels[index]:
            return False
    return len(filter_levels) == len(name_levels)


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: its MQTT filter and how to capture named segments.

    >>> p = Pattern.parse("devices/<device_id>/#")
    >>> p.filter, p.match("devices/d1/a/b")
    ('devices/+/#', {'device_id': 'd1'})
    """

    pattern: str
    filter: str
    names: tuple[tuple[int, str], ...]  # (level index, name)

    @classmethod
    def parse(cls, pattern: str) -> Pattern:
        levels = pattern.split("/")
        filter_levels: list[str] = []
        names: list[tuple[int, str]] = []
        for index, level in enumerate(levels):
            named = _NAMED.match(level)
            if named:
                if named.group(1) in {name for _, name in names}:
                    raise InvalidTopic(f"pattern {pattern!r} names {named.group(1)!r} twice")
                names.append((index, named.group(1)))
                filter_levels.append("+")
            elif "<" in level or ">" in level:
                raise InvalidTopic(f"pattern {pattern!r}: a named level is <identifier>")
            else:
                filter_levels.append(level)
        topic_filter = "/".join(filter_levels)
        if topic_filter.startswith(SHARE_PREFIX):
            raise InvalidTopic(f"pattern {pattern!r}: shared subscriptions are a server option")
        validate_filter(topic_filter)
        return cls(pattern, topic_filter, tuple(names))

    def match(self, topic_name: str) -> dict[str, str] | None:
        """The captured segments if ``topic_name`` matches, else None."""
        if not filter_matches(self.filter, topic_name):
            return None
        levels = topic_name.split("/")
        return {name: levels[index] for index, name in self.names}

    def join(self, child: Pattern) -> Pattern:
        """This pattern as a prefix of ``child`` (nesting): ``a/<x>`` + ``b/#``."""
        if self.filter.endswith("#"):
            raise InvalidTopic(f"pattern {self.pattern!r} ends with '#' and cannot be nested under")
        prefix = self.pattern.rstrip("/")
        return Pattern.parse(f"{prefix}/{child.pattern}" if prefix else child.pattern)
