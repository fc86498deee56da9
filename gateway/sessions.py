"""Cookies and Django sessions for HTTP and WebSocket scopes.

:class:`CookieMiddleware` parses the ``Cookie`` request header into
``scope["cookies"]``; :class:`SessionMiddleware` opens the Django session those
cookies name as ``scope["session"]`` and saves it when the response starts;
:func:`SessionMiddlewareStack` is the two together, as in Channels.
"""

from __future__ import annotations

import datetime
import time
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http.cookie import parse_cookie
from django.utils.encoding import force_str
from django.utils.http import http_date

from gateway.db import database_sync_to_async
from gateway.middleware import BaseMiddleware
from gateway.types import ASGIApp, Message, Receive, Scope, Send

_SAMESITE_VALUES = ("strict", "lax", "none")


class CookieMiddleware(BaseMiddleware):
    """Put the request's cookies, a ``{name: value}`` dict, in ``scope["cookies"]``.

    HTTP and WebSocket scopes carry request headers; any other scope is refused
    with :class:`ValueError`. :meth:`set_cookie` and :meth:`delete_cookie` add
    ``Set-Cookie`` headers to an outgoing ``http.response.start`` or
    ``websocket.accept`` message.
    """

    def populate_scope(self, scope: Scope) -> None:
        if "headers" not in scope:
            raise ValueError(
                f"CookieMiddleware got a {scope.get('type')!r} scope without 'headers'; "
                "use it only for HTTP and WebSocket connections."
            )
        cookies: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        scope["cookies"] = cookies

    @classmethod
    def set_cookie(
        cls,
        message: Message,
        key: str,
        value: Any = "",
        max_age: int | float | datetime.timedelta | None = None,
        expires: str | datetime.datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = False,
        httponly: bool | None = False,
        samesite: str | None = "lax",
    ) -> None:
        """Append a ``Set-Cookie`` header to ``message`` (RFC 6265 §4.1).

        ``expires`` is an HTTP date string, or a ``datetime`` — aware in any time
        zone, or naive meaning UTC — which is turned into ``max_age`` as Django's
        ``HttpResponse.set_cookie`` does. ``samesite`` is ``"strict"``, ``"lax"``,
        ``"none"`` or ``None`` (attribute left out).
        """
        morsels: SimpleCookie = SimpleCookie()
        morsels[key] = force_str(value)
        cookie = morsels[key]
        if isinstance(expires, datetime.datetime):
            max_age = _seconds_until(expires)
            expires = None
        if isinstance(max_age, datetime.timedelta):
            max_age = max_age.total_seconds()
        if expires:
            cookie["expires"] = expires
        if max_age is not None:
            cookie["max-age"] = int(max_age)
            if not expires:
                # Old clients ignore Max-Age; give them the matching Expires too.
                cookie["expires"] = http_date(time.time() + int(max_age))
        if path is not None:
            cookie["path"] = path
        if domain is not None:
            cookie["domain"] = domain
        if secure:
            cookie["secure"] = True
        if httponly:
            cookie["httponly"] = True
        if samesite is not None:
            if samesite.lower() not in _SAMESITE_VALUES:
                # AssertionError, with Channels' words: ported tests expect both.
                raise AssertionError(
                    f"samesite must be either 'strict', 'lax' or 'none', not {samesite!r}"
                )
            cookie["samesite"] = samesite
        header = cookie.output(header="").strip().encode("latin1")
        # ASGI: response header names are lowercase.
        message["headers"] = [*message.get("headers", ()), (b"set-cookie", header)]

    @classmethod
    def delete_cookie(
        cls, message: Message, key: str, path: str | None = "/", domain: str | None = None
    ) -> None:
        """Append a ``Set-Cookie`` header to ``message`` that makes the client drop ``key``."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
        )


def _seconds_until(moment: datetime.datetime) -> int:
    """Whole seconds from now until ``moment`` (naive means UTC), never negative.

    One second is added because the fraction lost by truncating would otherwise
    make the computed Expires one second early.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=1)
    return max(0, delta.days * 86400 + delta.seconds)


class SessionMiddleware:
    """Give each HTTP or WebSocket scope its Django session as ``scope["session"]``.

    The session is the one named by the ``SESSION_COOKIE_NAME`` cookie (a new, empty
    one if there is none), from ``SESSION_ENGINE``. Its data loads on first access,
    which touches the database: do that from synchronous code or through
    :func:`gateway.db.database_sync_to_async`.

    It is saved, if modified (or always with ``SESSION_SAVE_EVERY_REQUEST``), when
    the application sends ``http.response.start`` (not for status 500) or
    ``websocket.accept``, and that message gets the session cookie — or a cookie
    deletion if the session was emptied. Later changes on a WebSocket must be saved
    explicitly with ``scope["session"].save()``. Requires :class:`CookieMiddleware`
    above it; a session already in the scope is passed through untouched.
    """

    #: Messages on which a modified session is saved.
    save_message_types = ("http.response.start", "websocket.accept")
    #: Messages that can carry the session cookie back to the client.
    cookie_response_message_types = ("http.response.start", "websocket.accept")

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "session" in scope:
            return await self.inner(scope, receive, send)
        if "cookies" not in scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside of "
                "CookieMiddleware (use SessionMiddlewareStack)."
            )
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session: SessionBase = store(session_key)
        scope = {**scope, "session": session}
        had_cookie = settings.SESSION_COOKIE_NAME in scope["cookies"]

        async def send_saving_session(message: Message) -> None:
            if message["type"] in self.save_message_types:
                await self._save(session, message, had_cookie)
            await send(message)

        return await self.inner(scope, receive, send_saving_session)

    async def _save(self, session: SessionBase, message: Message, had_cookie: bool) -> None:
        if message.get("status") == 500:
            return
        if session.modified or settings.SESSION_SAVE_EVERY_REQUEST:
            # Saving and reading the expiry may load the session: database work.
            await database_sync_to_async(self._persist)(session, message, had_cookie)

    def _persist(self, session: SessionBase, message: Message, had_cookie: bool) -> None:
        """Save ``session``; put its cookie on ``message`` as Django's SessionMiddleware does."""
        carries_cookie = message["type"] in self.cookie_response_message_types
        if session.is_empty():
            # Nothing to keep (for example after logout's flush): drop the cookie.
            if carries_cookie and had_cookie:
                CookieMiddleware.delete_cookie(
                    message,
                    settings.SESSION_COOKIE_NAME,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                )
            return
        try:
            session.save()
        except UpdateError:
            raise SuspiciousOperation(
                "The session was deleted before the response started; the user may "
                "have logged out in a concurrent request."
            ) from None
        if not carries_cookie:
            return
        max_age = None if session.get_expire_at_browser_close() else session.get_expiry_age()
        CookieMiddleware.set_cookie(
            message,
            settings.SESSION_COOKIE_NAME,
            session.session_key,
            max_age=max_age,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=settings.SESSION_COOKIE_HTTPONLY,
            samesite=settings.SESSION_COOKIE_SAMESITE or None,
        )


def SessionMiddlewareStack(inner: ASGIApp) -> CookieMiddleware:
    """``CookieMiddleware(SessionMiddleware(inner))``: cookies, then the session."""
    return CookieMiddleware(SessionMiddleware(inner))
