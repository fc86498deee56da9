"""The example chat project served by this server: admin login through the browser
form, then the WebSocket chat with the session that login created."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.example.asgi import application
from tests.protocols.websocket.conftest import running

pytestmark = pytest.mark.django_db(transaction=True)


async def log_in(base: str, username: str) -> str:
    """Log in through the admin's HTML form, as a browser does; return the session id."""
    await sync_to_async(get_user_model().objects.create_superuser)(username, password="pw")
    async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
        form = await browser.get("/admin/login/?next=/admin/")
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        response = await browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": "pw",
                "next": "/admin/",
            },
            headers={"origin": base},
        )
        assert response.status_code == 302, response.text[:500]
        assert response.headers["location"] == "/admin/"
        dashboard = await browser.get("/admin/")
        assert dashboard.status_code == 200
        assert "Site administration" in dashboard.text
        return str(browser.cookies[settings.SESSION_COOKIE_NAME])


async def test_admin_login_then_chat_over_websocket() -> None:
    async with running(application, lifespan="auto") as server:
        base = f"http://127.0.0.1:{server.port}"
        alice = await log_in(base, "alice")
        bob = await log_in(base, "bob")
        room = f"ws://127.0.0.1:{server.port}/ws/chat/lobby/"

        def browser(session: str) -> dict[str, str]:
            return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}

        async with (
            connect(room, origin=base, additional_headers=browser(alice)) as a,  # type: ignore[arg-type]
            connect(room, origin=base, additional_headers=browser(bob)) as b,  # type: ignore[arg-type]
        ):
            await a.send(json.dumps({"message": "hello from alice"}))
            async with asyncio.timeout(5):
                for ws in (a, b):
                    assert json.loads(await ws.recv()) == {
                        "username": "alice",
                        "message": "hello from alice",
                    }


async def test_anonymous_and_cross_site_websockets_are_refused() -> None:
    async with running(application, lifespan="auto") as server:
        base = f"http://127.0.0.1:{server.port}"
        room = f"ws://127.0.0.1:{server.port}/ws/chat/lobby/"
        with pytest.raises(InvalidStatus) as anonymous:
            async with connect(room, origin=base):  # type: ignore[arg-type]
                pass
        with pytest.raises(InvalidStatus) as cross_site:
            async with connect(room, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
    assert anonymous.value.response.status_code == 403
    assert cross_site.value.response.status_code == 403
