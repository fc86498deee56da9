from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import AsyncClient, override_settings

from gateway.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    UserLazyObject,
    get_user,
    login,
    logout,
)
from gateway.testing import ApplicationCommunicator, WebsocketCommunicator
from gateway.types import Receive, Scope, Send

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


@pytest.fixture
async def alice() -> Any:
    return await sync_to_async(User.objects.create_user)("alice", password="wonderland")


async def session_cookie_for(user: Any) -> str:
    client = AsyncClient()
    await client.aforce_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def cookie_header(session_key: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())]


class ScopeRecorder:
    """A WebSocket app that accepts, keeps its scope, and runs ``action`` on connect."""

    def __init__(self, action: Any = None) -> None:
        self.action = action
        self.scope: Scope = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        if self.action is not None:
            await self.action(scope)
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"


async def connect(app: Any, session_key: str | None = None) -> dict[str, Any]:
    """Run one WebSocket connection through ``app``; return the accept message."""
    headers = cookie_header(session_key) if session_key else []
    communicator = WebsocketCommunicator(app, "/ws/", headers=headers)
    await communicator.send_input({"type": "websocket.connect"})
    accept = await communicator.receive_output()
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()
    return accept


def new_session_key(accept: dict[str, Any]) -> str:
    from http.cookies import SimpleCookie

    cookies: SimpleCookie = SimpleCookie()
    for name, value in accept.get("headers", []):
        if name == b"set-cookie":
            cookies.load(value.decode("latin1"))
    return cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
async def signals() -> AsyncIterator[list[tuple[str, Any, Any]]]:
    received: list[tuple[str, Any, Any]] = []

    def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        received.append(("login", request, user))

    def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        received.append(("logout", request, user))

    user_logged_in.connect(on_login)
    user_logged_out.connect(on_logout)
    yield received
    user_logged_in.disconnect(on_login)
    user_logged_out.disconnect(on_logout)


async def test_scope_user_comes_from_the_session_cookie(alice: Any) -> None:
    recorder = ScopeRecorder()

    await connect(AuthMiddlewareStack(recorder), await session_cookie_for(alice))

    assert recorder.scope["user"] == alice
    assert recorder.scope["user"].is_authenticated


async def test_no_cookie_means_anonymous_user() -> None:
    recorder = ScopeRecorder()

    await connect(AuthMiddlewareStack(recorder))

    assert isinstance(recorder.scope["user"], UserLazyObject)
    # The lazy object reaches the user it wraps through LazyObject's attribute proxy.
    assert recorder.scope["user"].is_anonymous  # type: ignore[attr-defined]


async def test_session_of_a_changed_password_is_no_longer_valid(alice: Any) -> None:
    session_key = await session_cookie_for(alice)
    alice.set_password("new password")
    await sync_to_async(alice.save)()
    recorder = ScopeRecorder()

    await connect(AuthMiddlewareStack(recorder), session_key)

    assert recorder.scope["user"].is_anonymous
    assert not await sync_to_async(SessionStore().exists)(session_key)


async def test_login_rotates_the_session_key_and_keeps_anonymous_data(
    alice: Any, signals: list[tuple[str, Any, Any]]
) -> None:
    anonymous = SessionStore()
    anonymous["cart"] = ["tea"]
    await sync_to_async(anonymous.save)()

    async def log_in(scope: Scope) -> None:
        await login(scope, alice)
        assert scope["user"] == alice

    accept = await connect(AuthMiddlewareStack(ScopeRecorder(log_in)), anonymous.session_key)

    session_key = new_session_key(accept)
    assert session_key != anonymous.session_key
    stored = await sync_to_async(SessionStore(session_key).load)()
    assert stored["cart"] == ["tea"]
    assert signals[-1] == ("login", None, alice)
    # The new cookie authenticates the next connection.
    recorder = ScopeRecorder()
    await connect(AuthMiddlewareStack(recorder), session_key)
    assert recorder.scope["user"] == alice


async def test_login_over_another_users_session_flushes_it(alice: Any) -> None:
    bob = await sync_to_async(User.objects.create_user)("bob", password="builder")
    bobs_session = SessionStore(await session_cookie_for(bob))

    def add_secret() -> None:
        bobs_session["secret"] = "bob's"
        bobs_session.save()

    await sync_to_async(add_secret)()

    async def log_in_alice(scope: Scope) -> None:
        await login(scope, alice)

    accept = await connect(
        AuthMiddlewareStack(ScopeRecorder(log_in_alice)), bobs_session.session_key
    )

    stored = await sync_to_async(SessionStore(new_session_key(accept)).load)()
    assert "secret" not in stored
    assert await get_user({"session": SessionStore(new_session_key(accept))}) == alice


async def test_logout_flushes_the_session(alice: Any, signals: list[tuple[str, Any, Any]]) -> None:
    session_key = await session_cookie_for(alice)

    async def log_out(scope: Scope) -> None:
        await logout(scope)
        assert isinstance(scope["user"], AnonymousUser)

    accept = await connect(AuthMiddlewareStack(ScopeRecorder(log_out)), session_key)

    assert not await sync_to_async(SessionStore().exists)(session_key)
    assert new_session_key(accept) == ""  # The cookie is deleted.
    assert signals[-1] == ("logout", None, alice)


async def test_login_needs_a_user() -> None:
    with pytest.raises(ValueError, match=r"^User must be passed as an argument"):
        await login({"session": SessionStore()}, None)


async def test_login_and_get_user_need_a_session(alice: Any) -> None:
    with pytest.raises(ValueError, match="Cannot find session in scope"):
        await login({}, alice)
    with pytest.raises(ValueError, match="Cannot find session in scope"):
        await get_user({})


@override_settings(
    AUTHENTICATION_BACKENDS=[
        "django.contrib.auth.backends.ModelBackend",
        "django.contrib.auth.backends.AllowAllUsersModelBackend",
    ]
)
async def test_login_with_several_backends_needs_one_named(alice: Any) -> None:
    scope: Scope = {"session": SessionStore()}
    with pytest.raises(ValueError, match="several authentication backends"):
        await login(scope, alice)

    await login(scope, alice, backend="django.contrib.auth.backends.AllowAllUsersModelBackend")
    assert await get_user(scope) == alice


async def test_auth_middleware_needs_session_middleware() -> None:
    communicator = ApplicationCommunicator(
        AuthMiddleware(ScopeRecorder()), {"type": "websocket", "headers": []}
    )
    with pytest.raises(ValueError, match="SessionMiddleware must be above it"):
        await communicator.wait()


def test_user_read_before_resolution_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="before AuthMiddleware resolved it"):
        UserLazyObject().is_authenticated  # type: ignore[attr-defined]  # noqa: B018
