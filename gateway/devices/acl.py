"""Per-device topic access control: pure, no I/O.

A device's rules are topic filters, one per line, where ``{username}`` stands for
the device's username. A device may publish to a topic its publish rules match,
subscribe to a filter its subscribe rules *cover* (every topic the requested
filter could match is matched by one rule), and receive what its subscribe rules
match. Without rules a device gets ``devices/{username}/#`` for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.topics import InvalidTopic, filter_matches, strip_share, validate_filter

DEFAULT_RULE = "devices/{username}/#"


def parse_rules(text: str, username: str) -> tuple[str, ...]:
    """The filters in ``text`` (one per line, ``#`` lines are comments), expanded."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("# "):
            continue
        if any(c in username for c in "+#/"):
            raise InvalidTopic(f"username {username!r} cannot be used in topic rules")
        rules.append(validate_filter(line.replace("{username}", username)))
    return tuple(rules)


def filter_covers(rule: str, requested: str) -> bool:
    """Whether every topic ``requested`` can match is matched by ``rule``.

    A rule starting with a wildcard covers no filter for ``$`` topics, which it
    could never match (MQTT 3.1.1 §4.7.2).
    """
    rule_levels = rule.split("/")
    requested_levels = strip_share(requested).split("/")
    if rule[:1] in ("+", "#") and requested_levels[0].startswith("$"):
        return False
    for index, level in enumerate(rule_levels):
        if level == "#":
            return True
        if index >= len(requested_levels):
            return False
        wanted = requested_levels[index]
        if wanted == "#" or (level != "+" and level != wanted):
            return False
    return len(rule_levels) == len(requested_levels)


@dataclass(frozen=True)
class DeviceACL:
    username: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    @classmethod
    def from_text(cls, username: str, publish: str, subscribe: str) -> DeviceACL:
        return cls(
            username,
            parse_rules(publish or DEFAULT_RULE, username),
            parse_rules(subscribe or DEFAULT_RULE, username),
        )

    def may_publish(self, topic_name: str) -> bool:
        return any(filter_matches(rule, topic_name) for rule in self.publish)

    def may_subscribe(self, topic_filter: str) -> bool:
        return any(filter_covers(rule, topic_filter) for rule in self.subscribe)

    def may_receive(self, topic_name: str) -> bool:
        return any(filter_matches(rule, topic_name) for rule in self.subscribe)
