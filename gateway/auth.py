"""Django authentication for scopes: ``scope["user"]``, login and logout.

:class:`AuthMiddleware` sets ``scope["user"]`` from the Django session that
:class:`~gateway.sessions.SessionMiddleware` put in the scope;
:func:`AuthMiddlewareStack` stacks cookies, session and auth as in Channels.
:func:`get_user`, :func:`login` and :func:`logout` are coroutine functions that run
their database work off the event loop: ``await login(self.scope, user)`` in async
consumers, ``async_to_sync(login)(self.scope, user)`` in sync ones. Semantics are
Django's (``django.contrib.auth.login``/``logout``): the session key rotates on login,
a different user's session is flushed, the session hash is verified on every
connection, and ``user_logged_in``/``user_logged_out`` fire with ``request=None``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

from gateway.db import database_sync_to_async
from gateway.middleware import BaseMiddleware
from gateway.sessions import CookieMiddleware, SessionMiddleware
from gateway.types import ASGIApp, Scope


def _session_of(scope: Scope) -> SessionBase:
    try:
        session: SessionBase = scope["session"]
    except KeyError:
        raise ValueError(
            "Cannot find session in scope. You should wrap your consumer in "
            "SessionMiddleware (or use AuthMiddlewareStack)."
        ) from None
    return session


class _SessionRequest:
    """The one part of an ``HttpRequest`` Django's ``auth.get_user`` reads."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session


def _get_user(scope: Scope) -> Any:
    # Django's own resolution: backend lookup, session hash check (with
    # SECRET_KEY_FALLBACKS rotation), flush on mismatch, AnonymousUser otherwise.
    return auth.get_user(_SessionRequest(_session_of(scope)))  # type: ignore[arg-type]


def _login(scope: Scope, user: Any, backend: str | None = None) -> None:
    session = _session_of(scope)
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError(
            "User must be passed as an argument or must be present in the scope "
            "(login(scope, user), or scope['user'] from AuthMiddleware)."
        )
    session_auth_hash = (
        user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    )
    if SESSION_KEY in session:
        other_user = auth._get_user_session_key(_SessionRequest(session)) != user.pk  # type: ignore[attr-defined]
        stale_hash = session_auth_hash and not constant_time_compare(
            session.get(HASH_SESSION_KEY, ""), session_auth_hash
        )
        if other_user or stale_hash:
            # Never carry another user's session data over to this one.
            session.flush()
    else:
        # A new key on privilege change defeats session fixation.
        session.cycle_key()
    backend = backend or getattr(user, "backend", None)
    if backend is None:
        backends = auth._get_backends(return_tuples=True)  # type: ignore[attr-defined]
        if len(backends) != 1:
            raise ValueError(
                "You have several authentication backends configured, so login() needs "
                "the `backend` argument or a `backend` attribute on the user."
            )
        backend = backends[0][1]
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = backend
    session[HASH_SESSION_KEY] = session_auth_hash
    scope["user"] = user
    auth.user_logged_in.send(sender=user.__class__, request=None, user=user)


def _logout(scope: Scope) -> None:
    session = _session_of(scope)
    user = scope.get("user")
    if isinstance(user, LazyObject):
        # Receivers get the user itself, not the middleware's proxy.
        wrapped = user._wrapped  # type: ignore[attr-defined]
        user = None if wrapped is empty else wrapped
    if user is not None and getattr(user, "is_authenticated", True):
        # Before the flush, so receivers can still see who logged out.
        auth.user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        from django.contrib.auth.models import AnonymousUser  # Needs the app registry.

        scope["user"] = AnonymousUser()


async def get_user(scope: Scope) -> Any:
    """The user of the scope's session, or ``AnonymousUser``."""
    return await database_sync_to_async(_get_user)(scope)


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` in on the scope's session and set ``scope["user"]``.

    The session is saved by SessionMiddleware on the next ``http.response.start``
    or ``websocket.accept``; after a WebSocket is accepted, save it yourself with
    ``await database_sync_to_async(scope["session"].save)()``.
    """
    await database_sync_to_async(_login)(scope, user, backend)


async def logout(scope: Scope) -> None:
    """Flush the scope's session and make ``scope["user"]`` anonymous."""
    await database_sync_to_async(_logout)(scope)


class UserLazyObject(LazyObject):
    """``scope["user"]`` before :class:`AuthMiddleware` has resolved it."""

    def _setup(self) -> None:
        raise ValueError("scope['user'] was accessed before AuthMiddleware resolved it.")


class AuthMiddleware(BaseMiddleware):
    """Set ``scope["user"]`` to the session's user (``AnonymousUser`` if none).

    The user is looked up once per scope, off the event loop, before the inner
    application starts, so consumers read ``self.scope["user"]`` freely. Requires
    :class:`~gateway.sessions.SessionMiddleware` above it; a ``user`` already in the
    scope is kept.
    """

    def populate_scope(self, scope: Scope) -> None:
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find session in scope; SessionMiddleware must be "
                "above it (or use AuthMiddlewareStack)."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        user = scope["user"]
        if isinstance(user, UserLazyObject):
            user._wrapped = await get_user(scope)


def AuthMiddlewareStack(inner: ASGIApp) -> CookieMiddleware:
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``, as in Channels."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))


__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "get_user",
    "login",
    "logout",
]
