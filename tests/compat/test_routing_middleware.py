"""Routers, middleware, sessions and auth: the same stack on Channels 4.3.2 and gateway."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import path, re_path

from tests.compat.conftest import assert_same_outcome
from tests.compat.frameworks import CHANNELS, GATEWAY, Framework, on, on_both, outcome

TIMEOUT = 5


def scope_echo(fw: Framework) -> Any:
    """A consumer that answers its first frame with what its scope holds."""

    class ScopeEcho(fw.websocket.AsyncJsonWebsocketConsumer):  # type: ignore[name-defined]
        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            scope = self.scope
            user = scope.get("user")
            await self.send_json(
                {
                    "url_route": scope.get("url_route"),
                    "path": scope["path"],
                    "cookies": scope.get("cookies"),
                    "user": None if user is None else str(user),
                    "authenticated": None if user is None else user.is_authenticated,
                    "session_key": scope["session"].session_key if "session" in scope else None,
                    "tenant": scope.get("tenant"),
                }
            )

    return ScopeEcho


async def routed_scope(fw: Framework, headers: Any = ()) -> Any:
    echo = scope_echo(fw).as_asgi()

    class Tenant(fw.middleware.BaseMiddleware):  # type: ignore[name-defined]
        async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
            scope = dict(scope, tenant="acme")
            return await super().__call__(scope, receive, send)

    application = fw.routing.ProtocolTypeRouter(
        {
            "websocket": Tenant(
                fw.auth.AuthMiddlewareStack(
                    fw.routing.URLRouter(
                        [
                            path("rooms/<str:room>/", echo),
                            re_path(
                                r"^nested/(?P<group>\w+)/", fw.routing.URLRouter([echo_route(echo)])
                            ),
                        ]
                    )
                )
            )
        }
    )
    results = []
    for target in ("/rooms/lobby/", "/nested/g1/item/7/"):
        communicator = fw.testing.WebsocketCommunicator(application, target, headers=list(headers))
        await communicator.connect(TIMEOUT)
        await communicator.send_json_to({})
        results.append(await communicator.receive_json_from(TIMEOUT))
        await communicator.disconnect(timeout=TIMEOUT)
    return results


def echo_route(echo: Any) -> Any:
    return path("item/<int:n>/", echo)


@pytest.mark.django_db(transaction=True)
async def test_routers_and_middleware_build_the_same_scope_for_an_anonymous_user() -> None:
    channels, gateway = await on_both(routed_scope)
    assert channels == gateway
    assert channels[1]["url_route"] == {"args": [], "kwargs": {"group": "g1", "n": 7}}


async def logged_in_scope(fw: Framework) -> Any:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = await User.objects.acreate(username=f"ada-{fw.name}")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    await session.asave()
    cookie = f"sessionid={session.session_key}".encode()
    results = await routed_scope(fw, headers=[(b"cookie", cookie)])
    for result in results:
        assert result["session_key"] == session.session_key
        result["session_key"] = result["cookies"] = "<the session>"
        result["user"] = result["user"].rsplit("-", 1)[0]
    return results


@pytest.mark.django_db(transaction=True)
async def test_auth_middleware_finds_the_sessions_user() -> None:
    channels, gateway = await on_both(logged_in_scope)
    assert channels == gateway
    assert channels[0]["authenticated"] is True


async def router_errors(fw: Framework) -> list[tuple[str, Any]]:
    async def app(scope: Any, receive: Any, send: Any) -> str:
        return "the application's value"

    async def nothing() -> dict[str, Any]:
        return {}

    protocol = fw.routing.ProtocolTypeRouter({"websocket": fw.middleware.BaseMiddleware(app)})
    channel = fw.routing.ChannelNameRouter({"jobs": app})
    url = fw.routing.URLRouter([path("a/", app)])  # type: ignore[arg-type]  # ASGI, not a view
    calls = [
        protocol({"type": "websocket"}, nothing, None),
        protocol({"type": "mqtt"}, nothing, None),
        channel({"type": "channel", "channel": "jobs"}, nothing, None),
        channel({"type": "channel", "channel": "other"}, nothing, None),
        channel({"type": "channel"}, nothing, None),
        url({"type": "websocket", "path": "/a/"}, nothing, None),
        url({"type": "websocket", "path": "/b/"}, nothing, None),
        url({"type": "websocket"}, nothing, None),
    ]
    return [await outcome(call) for call in calls]


async def test_routers_return_the_value_or_fail_in_channels_words() -> None:
    channels, gateway = await on_both(router_errors)
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


async def session_use(fw: Framework) -> list[Any]:
    class Counter(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            session = self.scope["session"]
            session["count"] = session.get("count", 0) + 1
            await fw.db.database_sync_to_async(session.save)()
            await self.send(text_data=str(session["count"]))

    application = fw.sessions.SessionMiddlewareStack(Counter.as_asgi())
    communicator = fw.testing.WebsocketCommunicator(application, "/")
    await communicator.connect(TIMEOUT)
    replies = []
    for _ in range(2):
        await communicator.send_to(text_data="+")
        replies.append(await communicator.receive_from(TIMEOUT))
    await communicator.disconnect(timeout=TIMEOUT)
    return replies


@pytest.mark.django_db(transaction=True)
async def test_sessions_are_saved_by_hand_after_accept() -> None:
    channels, gateway = await on_both(session_use)
    assert channels == gateway == ["1", "2"]


async def missing_pieces(fw: Framework) -> list[tuple[str, Any]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def nothing() -> dict[str, Any]:
        return {}

    return [
        await outcome(fw.sessions.SessionMiddleware(app)({"type": "http"}, nothing, None)),
        await outcome(fw.auth.login({"type": "websocket"}, None)),
        await outcome(fw.auth.login({"session": {}}, None)),
    ]


@pytest.mark.django_db(transaction=True)
async def test_missing_cookies_session_or_user_fail_in_channels_words() -> None:
    channels, gateway = await on_both(missing_pieces)
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


async def origins(fw: Framework) -> list[Any]:
    class Open(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        pass

    application = fw.security.OriginValidator(Open.as_asgi(), ["https://good.example", ".ok.org"])
    results = []
    for origin in (b"https://good.example", b"https://x.ok.org", b"https://bad.example", None):
        headers = [] if origin is None else [(b"origin", origin)]
        communicator = fw.testing.WebsocketCommunicator(application, "/", headers=headers)
        results.append(await communicator.connect(TIMEOUT))
        await communicator.disconnect(timeout=TIMEOUT)
    return results


async def test_origin_validation_accepts_and_refuses_the_same_origins() -> None:
    channels, gateway = await on_both(origins)
    assert channels == gateway


# Deliberate differences (docs/porting.md) -------------------------------------------


async def cookie_header(fw: Framework) -> list[Any]:
    message: dict[str, Any] = {"type": "http.response.start", "headers": []}
    fw.sessions.CookieMiddleware.set_cookie(message, "k", "v")
    return list(message["headers"])


async def test_the_set_cookie_header_name_is_lowercase_on_gateway() -> None:
    """docs/porting.md, gateway.sessions: "the header is named set-cookie"."""
    channels, gateway = await on_both(cookie_header)
    assert [name for name, _ in channels] == [b"Set-Cookie"]
    assert [name for name, _ in gateway] == [b"set-cookie"]
    assert [value for _, value in channels] == [value for _, value in gateway]


async def lifespan(fw: Framework) -> tuple[str, Any]:
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(events)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    router = fw.routing.ProtocolTypeRouter({})
    result = await outcome(router({"type": "lifespan"}, receive, send))
    return result if result[0] != "ok" else ("ok", sent)


async def test_an_unrouted_lifespan_is_answered_on_gateway() -> None:
    """docs/porting.md, gateway.routing: "Lifespan"."""
    assert await on(CHANNELS, lifespan) == (
        "ValueError",
        "No application configured for scope type 'lifespan'",
    )
    assert await on(GATEWAY, lifespan) == (
        "ok",
        ["lifespan.startup.complete", "lifespan.shutdown.complete"],
    )
