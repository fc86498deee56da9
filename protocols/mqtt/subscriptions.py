"""Dynamic subscriptions: the filters instances subscribed to with ``mqtt.subscribe``.

Pure, no I/O; the dispatcher (:mod:`protocols.mqtt.dispatch`) routes a message to every
route key whose dynamic filter matches it, besides its route (docs/specs/mqtt.md).
"""

from __future__ import annotations

from typing import Any

from gateway.topics import filter_matches


class DynamicSubscriptions:
    """Filters instances subscribed to with ``mqtt.subscribe``, per route key."""

    def __init__(self) -> None:
        self.by_key: dict[Any, dict[str, int]] = {}

    def add(self, key: Any, topic_filter: str, qos: int) -> None:
        self.by_key.setdefault(key, {})[topic_filter] = qos

    def remove(self, key: Any, topic_filter: str) -> None:
        filters = self.by_key.get(key)
        if filters is not None:
            filters.pop(topic_filter, None)
            if not filters:
                del self.by_key[key]

    def drop(self, key: Any) -> list[str]:
        """Forget ``key`` (its instance ended); return its filters."""
        return list(self.by_key.pop(key, {}))

    def filters(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for filters in self.by_key.values():
            for topic_filter, qos in filters.items():
                merged[topic_filter] = max(qos, merged.get(topic_filter, 0))
        return merged

    def in_use(self, topic_filter: str) -> bool:
        return any(topic_filter in filters for filters in self.by_key.values())

    def matches(self, topic_name: str) -> list[tuple[Any, str]]:
        """(key, filter) for every subscribed key whose filter matches ``topic_name``."""
        found: list[tuple[Any, str]] = []
        for key, filters in self.by_key.items():
            for topic_filter in filters:
                if filter_matches(topic_filter, topic_name):
                    found.append((key, topic_filter))
                    break
        return found
