import datetime
from http.cookies import SimpleCookie

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings
from django.utils import timezone

from gateway.db import database_sync_to_async
from gateway.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from gateway.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from gateway.types import Message, Receive, Scope, Send


def set_cookie_header(message: Message) -> SimpleCookie:
    cookies: SimpleCookie = SimpleCookie()
    for name, value in message.get("headers", []):
        if name == b"set-cookie":
            cookies.load(value.decode("latin1"))
    return cookies


# CookieMiddleware ------------------------------------------------------------


async def test_cookies_are_parsed_into_a_copy_of_the_scope() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "websocket", "headers": [(b"cookie", b"a=1; theme=dark")]}
    await CookieMiddleware(app)(scope, receive=None, send=None)  # type: ignore[arg-type]

    assert seen[0]["cookies"] == {"a": "1", "theme": "dark"}
    assert "cookies" not in scope


async def test_no_cookie_header_gives_empty_cookies() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    await CookieMiddleware(app)({"type": "http", "headers": []}, None, None)  # type: ignore[arg-type]

    assert seen[0]["cookies"] == {}


async def test_scope_without_headers_is_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="without 'headers'"):
        await CookieMiddleware(app)({"type": "channel"}, None, None)  # type: ignore[arg-type]


def test_set_cookie_attributes() -> None:
    message: Message = {"type": "http.response.start", "status": 200, "headers": [(b"x", b"y")]}
    CookieMiddleware.set_cookie(
        message,
        "token",
        "abc",
        max_age=60,
        path="/app",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="Strict",
    )

    assert message["headers"][0] == (b"x", b"y")
    cookie = set_cookie_header(message)["token"]
    assert cookie.value == "abc"
    assert cookie["max-age"] == "60"
    assert cookie["expires"]  # Set from max_age for clients that ignore Max-Age.
    assert (cookie["path"], cookie["domain"], cookie["samesite"]) == (
        "/app",
        "example.com",
        "Strict",
    )
    assert cookie["secure"] is True
    assert cookie["httponly"] is True


def test_set_cookie_with_aware_expires() -> None:
    """Channels 4.3.2 raises AttributeError here on Django 5+ (timezone.utc is gone)."""
    message: Message = {"type": "http.response.start"}
    expires = timezone.now().astimezone(datetime.timezone(datetime.timedelta(hours=5)))
    CookieMiddleware.set_cookie(message, "k", "v", expires=expires + datetime.timedelta(hours=1))

    max_age = int(set_cookie_header(message)["k"]["max-age"])
    assert 3595 <= max_age <= 3601


def test_set_cookie_with_naive_expires_means_utc() -> None:
    message: Message = {"type": "http.response.start"}
    naive_utc = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    CookieMiddleware.set_cookie(message, "k", expires=naive_utc + datetime.timedelta(minutes=10))

    assert 595 <= int(set_cookie_header(message)["k"]["max-age"]) <= 601


def test_set_cookie_with_past_expires_is_max_age_zero() -> None:
    message: Message = {"type": "http.response.start"}
    CookieMiddleware.set_cookie(message, "k", expires=timezone.now() - datetime.timedelta(days=2))

    assert set_cookie_header(message)["k"]["max-age"] == "0"


def test_set_cookie_with_string_expires() -> None:
    message: Message = {"type": "http.response.start"}
    CookieMiddleware.set_cookie(message, "k", expires="Wed, 21 Oct 2099 07:28:00 GMT")

    cookie = set_cookie_header(message)["k"]
    assert cookie["expires"] == "Wed, 21 Oct 2099 07:28:00 GMT"
    assert cookie["max-age"] == ""


def test_set_cookie_rejects_bad_samesite() -> None:
    with pytest.raises(AssertionError, match=r"^samesite must be either"):
        CookieMiddleware.set_cookie({"type": "http.response.start"}, "k", samesite="sometimes")


def test_delete_cookie() -> None:
    message: Message = {"type": "http.response.start"}
    CookieMiddleware.delete_cookie(message, "sessionid", path="/p")

    cookie = set_cookie_header(message)["sessionid"]
    assert cookie.value == ""
    assert cookie["max-age"] == "0"
    assert "1970" in cookie["expires"]
    assert cookie["path"] == "/p"


# SessionMiddleware -------------------------------------------------------------


def counting_app(status: int = 200) -> object:
    """An HTTP app that counts visits in the session and answers with the count."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        def visit() -> int:
            scope["session"]["visits"] = scope["session"].get("visits", 0) + 1
            return int(scope["session"]["visits"])

        visits = await database_sync_to_async(visit)()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": str(visits).encode()})

    return app


async def get(app: object, cookie: str | None = None) -> dict[str, object]:
    headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())] if cookie else []
    communicator = HttpCommunicator(app, "GET", "/", headers=headers)  # type: ignore[arg-type]
    return await communicator.get_response()


@pytest.mark.django_db(transaction=True)
async def test_http_session_is_saved_and_its_cookie_set_on_response_start() -> None:
    app = SessionMiddlewareStack(counting_app())  # type: ignore[arg-type]

    first = await get(app)
    session_key = set_cookie_header(first)[settings.SESSION_COOKIE_NAME].value
    second = await get(app, cookie=session_key)

    assert first["body"] == b"1"
    assert second["body"] == b"2"
    stored = await sync_to_async(SessionStore(session_key).load)()
    assert stored["visits"] == 2
    cookie = set_cookie_header(second)[settings.SESSION_COOKIE_NAME]
    assert cookie.value == session_key
    assert cookie["httponly"] is True
    assert cookie["samesite"] == settings.SESSION_COOKIE_SAMESITE


@pytest.mark.django_db(transaction=True)
async def test_session_is_not_saved_on_a_500_response() -> None:
    response = await get(SessionMiddlewareStack(counting_app(status=500)))  # type: ignore[arg-type]

    assert response["status"] == 500
    assert settings.SESSION_COOKIE_NAME not in set_cookie_header(response)


@pytest.mark.django_db(transaction=True)
async def test_unmodified_session_sets_no_cookie() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    response = await get(SessionMiddlewareStack(app))

    assert set_cookie_header(response) == SimpleCookie()


@pytest.mark.django_db(transaction=True)
async def test_session_emptied_by_the_application_deletes_its_cookie() -> None:
    session = SessionStore()
    session["visits"] = 5
    await sync_to_async(session.save)()
    assert session.session_key is not None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await database_sync_to_async(scope["session"].flush)()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    response = await get(SessionMiddlewareStack(app), cookie=session.session_key)

    cookie = set_cookie_header(response)[settings.SESSION_COOKIE_NAME]
    assert cookie.value == ""
    assert cookie["max-age"] == "0"
    assert not await sync_to_async(SessionStore().exists)(session.session_key)


@pytest.mark.django_db(transaction=True)
@override_settings(SESSION_SAVE_EVERY_REQUEST=True, SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
async def test_save_every_request_and_browser_session_cookie() -> None:
    session = SessionStore()
    session["kept"] = True
    await sync_to_async(session.save)()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    response = await get(SessionMiddlewareStack(app), cookie=session.session_key)

    cookie = set_cookie_header(response)[settings.SESSION_COOKIE_NAME]
    assert cookie.value == session.session_key
    assert cookie["max-age"] == ""  # A browser-session cookie.


@pytest.mark.django_db(transaction=True)
async def test_websocket_session_is_saved_on_accept() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"

        def remember() -> None:
            scope["session"]["room"] = "lobby"

        await database_sync_to_async(remember)()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"

    communicator = WebsocketCommunicator(SessionMiddlewareStack(app), "/ws/")
    await communicator.send_input({"type": "websocket.connect"})
    accept = await communicator.receive_output()
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()

    session_key = set_cookie_header(accept)[settings.SESSION_COOKIE_NAME].value
    stored = await sync_to_async(SessionStore(session_key).load)()
    assert stored == {"room": "lobby"}


async def test_session_middleware_needs_cookie_middleware() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    communicator = ApplicationCommunicator(SessionMiddleware(app), {"type": "http", "headers": []})
    # Channels' wording first: ported tests match it.
    with pytest.raises(ValueError, match=r"^No cookies in scope - SessionMiddleware needs to run"):
        await communicator.wait()


async def test_existing_session_is_passed_through() -> None:
    seen: list[Scope] = []
    outer_session = SessionStore()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "http", "headers": [], "cookies": {}, "session": outer_session}
    await SessionMiddleware(app)(scope, None, None)  # type: ignore[arg-type]

    assert seen[0]["session"] is outer_session
