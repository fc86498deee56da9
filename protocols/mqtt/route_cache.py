"""Topic names resolved to routes, the most recently used remembered.

Resolving a topic walks every route of the :class:`~gateway.routing.topic.TopicRouter`;
devices publish to the same few topics again and again, so the server asks this
cache first. Bounded: at ``size`` topics, the least recently used is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.routing.topic import RouteMatch, TopicRouter

ROUTE_CACHE_SIZE = 10_000


class RouteCache:
    """``router.resolve``, remembered for the ``size`` most recently used topic names."""

    def __init__(self, router: TopicRouter, size: int = ROUTE_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError("the route cache size must be at least 1")
        self.router = router
        self.size = size
        #: Topic name -> its route, or None (unroutable); oldest use first.
        self._routes: OrderedDict[str, RouteMatch | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._routes)

    def resolve(self, topic_name: str) -> RouteMatch | None:
        """The route ``topic_name`` belongs to; None: no route matches it."""
        routes = self._routes
        try:
            match = routes[topic_name]
            routes.move_to_end(topic_name)
        except KeyError:
            match = routes[topic_name] = self.router.resolve(topic_name)
            if len(routes) > self.size:
                routes.popitem(last=False)
        return match
