"""The base of every dashboard socket: only a logged-in user (or staff) gets in.

``project.asgi`` already checks the Origin (``AllowedHostsOriginValidator``) and
resolves ``scope["user"]`` from the session (``AuthMiddlewareStack``); this base
decides who is admitted. A socket that is not admitted is accepted and closed at
once, before it joins any group or receives anything, with a code the page's
script can read (a refused handshake shows in browsers as 1006, the same as a
network failure, so the page could not tell "log in again" from "retry"):

- :data:`LOGIN_REQUIRED` (4401) without a logged-in user;
- :data:`STAFF_REQUIRED` (4403) for a user who is not staff on a staff-only socket.

4000-4999 are the application's close codes (RFC 6455 §7.4.2); 4401/4403 mirror
HTTP's 401 and 403, as graphql-ws does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.generic.websocket import AsyncJsonWebsocketConsumer

LOGIN_REQUIRED = 4401
STAFF_REQUIRED = 4403


class DashboardSocket(AsyncJsonWebsocketConsumer):
    """Admits logged-in users (``staff_only``: staff), then joins :meth:`live_groups`.

    Subclasses name their groups in :meth:`live_groups`, not in ``groups``: a
    consumer joins ``groups`` before ``connect()`` runs, so a socket about to be
    refused would be a member, however briefly. :meth:`admitted` is the place to
    send the first state.
    """

    #: Refuse logged-in users who are not staff (pages that show everyone's data).
    staff_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.groups:
            raise TypeError(
                f"{cls.__name__}: a dashboard socket joins its groups once admitted; "
                "name them in live_groups(), not in groups"
            )

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=LOGIN_REQUIRED, reason="login required")
        elif self.staff_only and not user.is_staff:
            await self.close(code=STAFF_REQUIRED, reason="staff only")
        else:
            await self.join_groups(self.live_groups())
            await self.admitted()

    def live_groups(self) -> list[str]:
        """The channel-layer groups this socket follows once admitted."""
        return []

    async def admitted(self) -> None:
        """Called once the user is in and the groups are joined."""
