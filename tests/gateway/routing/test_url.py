import pytest
from django import urls
from django.core.exceptions import ImproperlyConfigured
from django.urls import include
from django.urls.exceptions import Resolver404

from gateway.auth import AuthMiddlewareStack
from gateway.consumer import AsyncConsumer
from gateway.routing import URLRouter
from gateway.types import Scope
from tests.gateway.routing.apps import RecordingApp, never_receive, never_send, path, re_path


async def route(router: URLRouter, path: str, **extra: object) -> None:
    scope: Scope = {"type": "websocket", "path": path, "headers": [], **extra}
    await router(scope, never_receive, never_send)


async def test_path_with_converters() -> None:
    room, other = RecordingApp("room"), RecordingApp("other")
    router = URLRouter(
        [
            path("rooms/<int:number>/", room),
            path("rooms/<slug:name>/", other),
        ]
    )

    await route(router, "/rooms/42/")
    await route(router, "/rooms/lobby/")

    assert room.scope["url_route"] == {"args": (), "kwargs": {"number": 42}}
    assert room.scope["path_remaining"] == ""
    assert other.scope["url_route"] == {"args": (), "kwargs": {"name": "lobby"}}


async def test_re_path_named_and_positional_groups() -> None:
    named, positional = RecordingApp("named"), RecordingApp("positional")
    router = URLRouter(
        [
            re_path(r"^chat/(?P<room>\w+)/$", named),
            re_path(r"^files/(\d+)/(\w+)$", positional),
        ]
    )

    await route(router, "/chat/lobby/")
    await route(router, "/files/7/readme")

    assert named.scope["url_route"] == {"args": (), "kwargs": {"room": "lobby"}}
    assert positional.scope["url_route"] == {"args": ("7", "readme"), "kwargs": {}}


async def test_endpoint_paths_do_not_match_longer_paths() -> None:
    router = URLRouter([path("chat/", RecordingApp())])

    with pytest.raises(ValueError, match=r"No route found for path 'chat/extra/'"):
        await route(router, "/chat/extra/")


async def test_default_kwargs_are_merged() -> None:
    app = RecordingApp()
    router = URLRouter([path("feed/<str:name>/", app, kwargs={"format": "json"})])

    await route(router, "/feed/news/")

    assert app.scope["url_route"]["kwargs"] == {"name": "news", "format": "json"}


async def test_nested_routers_accumulate_url_route_and_path_remaining() -> None:
    leaf = RecordingApp("leaf")
    router = URLRouter(
        [
            path(
                "tenants/<int:tenant>/",
                URLRouter([re_path(r"^devices/(?P<device>[a-z]+)/$", leaf)]),
            ),
        ]
    )

    await route(router, "/tenants/3/devices/lamp/")

    assert leaf.scope["url_route"] == {"args": (), "kwargs": {"tenant": 3, "device": "lamp"}}
    assert leaf.scope["path_remaining"] == ""
    assert leaf.scope["path"] == "/tenants/3/devices/lamp/"


async def test_positional_args_accumulate_across_nesting() -> None:
    leaf = RecordingApp()
    router = URLRouter([re_path(r"^(\d+)/", URLRouter([re_path(r"^(\w+)/$", leaf)]))])

    await route(router, "/12/abc/")

    assert leaf.scope["url_route"]["args"] == ("12", "abc")


async def test_unmatched_nested_router_falls_through_to_next_route() -> None:
    nested_leaf, fallback = RecordingApp("nested"), RecordingApp("fallback")
    router = URLRouter(
        [
            path("api/", URLRouter([path("v1/", nested_leaf)])),
            re_path(r"^api/", fallback),
        ]
    )

    await route(router, "/api/v2/")

    assert nested_leaf.scopes == []
    assert fallback.scope["path_remaining"] == "v2/"


async def test_nesting_works_through_middleware() -> None:
    leaf = RecordingApp()
    router = URLRouter([path("chat/", AuthMiddlewareStack(URLRouter([path("room/", leaf)])))])

    # AuthMiddlewareStack is looked through: the outer path() became a prefix.
    assert router.routes[0].pattern.match("chat/room/") == ("room/", (), {})


async def test_nested_no_match_reaches_the_outermost_router_as_value_error() -> None:
    router = URLRouter([path("api/", URLRouter([path("v1/", RecordingApp())]))])

    with pytest.raises(ValueError, match=r"No route found for path 'api/v9/'"):
        await route(router, "/api/v9/")


async def test_resolver404_raised_by_an_application_is_not_swallowed() -> None:
    async def broken(scope: Scope, receive: object, send: object) -> None:
        raise Resolver404("raised by the application itself")

    fallback = RecordingApp()
    router = URLRouter([path("a/", broken), re_path(r"^a/", fallback)])

    with pytest.raises(Resolver404, match="raised by the application itself"):
        await route(router, "/a/")
    assert fallback.scopes == []


async def test_root_path_is_stripped_by_the_outermost_router() -> None:
    app = RecordingApp()
    router = URLRouter([path("chat/<str:room>/", app)])

    await route(router, "/prefix/chat/lobby/", root_path="/prefix")

    assert app.scope["url_route"]["kwargs"] == {"room": "lobby"}
    assert app.scope["path"] == "/prefix/chat/lobby/"


async def test_path_outside_root_path_has_no_route() -> None:
    router = URLRouter([path("chat/", RecordingApp())])

    with pytest.raises(ValueError, match=r"No route found for path '/chat/'.*root_path"):
        await route(router, "/chat/", root_path="/prefix")


async def test_scope_without_path_is_a_clear_error() -> None:
    router = URLRouter([path("chat/", RecordingApp())])

    with pytest.raises(ValueError, match="No 'path' key in connection scope"):
        await router({"type": "channel", "channel": "x"}, never_receive, never_send)


async def test_routes_of_the_callers_pattern_objects_are_left_untouched() -> None:
    nested = path("api/", URLRouter([path("v1/", RecordingApp())]))
    URLRouter([nested])

    assert nested.pattern.match("api/v1/") is None  # Still an endpoint pattern.


def test_include_is_refused_at_construction() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"include\(\) is not supported"):
        # Deliberately what URLRouter refuses: Django's path() over include() is a URLResolver.
        URLRouter([urls.path("admin/", include([]))])  # type: ignore[list-item]


def test_non_patterns_are_refused_at_construction() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"route 0 is .*path\(\) or re_path\(\)"):
        URLRouter([("chat/", RecordingApp())])  # type: ignore[list-item]  # deliberately no route


def test_consumer_class_without_as_asgi_is_refused_at_construction() -> None:
    class ChatConsumer(AsyncConsumer):
        pass

    with pytest.raises(ImproperlyConfigured, match=r"route 1 \(chat/\).*ChatConsumer\.as_asgi"):
        # Deliberately the class where its application belongs.
        URLRouter([path("x/", RecordingApp()), path("chat/", ChatConsumer)])  # type: ignore[arg-type]


def test_django_view_is_refused_at_construction() -> None:
    from django.views import View

    with pytest.raises(ImproperlyConfigured, match="is a Django view"):
        URLRouter([path("page/", View.as_view())])  # type: ignore[arg-type]  # deliberately a view
