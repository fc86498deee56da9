"""ASGI types shared by gateway and its interface servers.

Scopes and messages are plain dicts (ASGI, and gateway's ``mqtt`` and ``telegram``
specs in docs/specs/); these aliases name them so signatures read as the spec does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
