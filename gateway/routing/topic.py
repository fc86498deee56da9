"""Route MQTT topics to applications: ``TopicRouter`` and ``topic()``.

The MQTT counterpart of ``URLRouter``/``path()``::

    application = ProtocolTypeRouter({
        "mqtt": TopicRouter([
            topic("devices/<device_id>/telemetry", TelemetryConsumer.as_asgi(), qos=1),
            topic("devices/<device_id>/", TopicRouter([
                topic("status", StatusConsumer.as_asgi()),
            ])),
        ]),
    })

The interface server asks the router which filters to subscribe to
(:attr:`TopicRouter.filters`) and which route a topic belongs to
(:meth:`TopicRouter.resolve`); it puts the result in ``scope["route"]`` and calls
the router, which hands the scope to that route's application (through any
middleware wrapping a nested router). See docs/specs/mqtt.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.topics import InvalidTopic, Pattern
from gateway.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class TopicRoute:
    """One ``topic()`` entry: a pattern, the application it routes to, its QoS."""

    pattern: Pattern
    application: Any
    qos: int


@dataclass(frozen=True)
class RouteMatch:
    """A topic resolved to a route: the full (nested) pattern and the captured segments."""

    pattern: Pattern
    kwargs: dict[str, str]
    qos: int

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The route key: one application instance per key (docs/specs/mqtt.md)."""
        return (self.pattern.pattern, tuple(sorted(self.kwargs.items())))


def topic(pattern: str, application: Any, qos: int = 0) -> TopicRoute:
    """Route topics matching ``pattern`` to ``application`` (subscribed at ``qos``).

    ``pattern`` is an MQTT topic filter whose levels may be named, ``<device_id>``,
    matching one level like ``+`` and captured into ``scope["route"]["kwargs"]``.
    A pattern ending in ``/`` routes to a nested :class:`TopicRouter`.
    """
    if qos not in (0, 1, 2):
        raise ValueError(f"topic({pattern!r}): qos must be 0, 1 or 2, not {qos!r}")
    if find_topic_router(application) is not None:
        return TopicRoute(
            Pattern.parse(pattern.rstrip("/")) if pattern else _ROOT, application, qos
        )
    if pattern.endswith("/"):
        raise InvalidTopic(f"topic({pattern!r}): only a nested TopicRouter may end with '/'")
    return TopicRoute(Pattern.parse(pattern), application, qos)


_ROOT = Pattern("", "", ())


def find_topic_router(application: Any) -> TopicRouter | None:
    """The TopicRouter inside ``application`` (through ProtocolTypeRouter and middleware)."""
    seen = 0
    while application is not None and seen < 32:
        if isinstance(application, TopicRouter):
            return application
        mapping = getattr(application, "application_mapping", None)
        if isinstance(mapping, dict):
            application = mapping.get("mqtt")
        else:
            application = getattr(application, "inner", None)
        seen += 1
    return None


class TopicRouter:
    """Dispatch an ``mqtt`` scope to the application of the route it was resolved to."""

    def __init__(self, routes: Sequence[TopicRoute]) -> None:
        for route in routes:
            if not isinstance(route, TopicRoute):
                raise TypeError(f"TopicRouter takes topic() routes, not {route!r}")
        self.routes = list(routes)
        self._flat = list(self._flatten())
        self._targets: dict[str, ASGIApp] = {}
        for route in self.routes:
            child = find_topic_router(route.application)
            if child is None:
                self._targets[route.pattern.pattern] = route.application
            else:
                for full, _ in child._flatten():
                    self._targets[_join(route.pattern, full).pattern] = route.application

    def _flatten(self) -> Iterator[tuple[Pattern, int]]:
        for route in self.routes:
            child = find_topic_router(route.application)
            if child is None:
                yield route.pattern, route.qos
            else:
                for pattern, qos in child._flatten():
                    yield _join(route.pattern, pattern), max(qos, route.qos)

    @property
    def patterns(self) -> list[tuple[Pattern, int]]:
        """Every full pattern this router (and its nested routers) declares, in order."""
        return list(self._flat)

    @property
    def filters(self) -> dict[str, int]:
        """The exact subscription filters the routing declares, each at its highest QoS."""
        filters: dict[str, int] = {}
        for pattern, qos in self._flat:
            filters[pattern.filter] = max(qos, filters.get(pattern.filter, 0))
        return filters

    def resolve(self, topic_name: str) -> RouteMatch | None:
        """The first route (in declaration order) matching ``topic_name``, or None."""
        for pattern, qos in self._flat:
            kwargs = pattern.match(topic_name)
            if kwargs is not None:
                return RouteMatch(pattern, kwargs, qos)
        return None

    def _target(self, full_pattern: str) -> ASGIApp | None:
        # Called with the full pattern also when nested: try its suffixes.
        levels = full_pattern.split("/")
        for start in range(len(levels)):
            target = self._targets.get("/".join(levels[start:]))
            if target is not None:
                return target
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        route = scope.get("route")
        if scope.get("type") != "mqtt" or not isinstance(route, dict):
            raise ValueError("TopicRouter serves mqtt scopes that carry a 'route' (an MQTT server)")
        target = self._target(str(route.get("pattern", "")))
        if target is None:
            raise ValueError(f"No route found for topic pattern {route.get('pattern')!r}")
        return await target(scope, receive, send)


def _join(prefix: Pattern, child: Pattern) -> Pattern:
    return child if not prefix.pattern else prefix.join(child)
