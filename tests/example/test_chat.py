"""The example chat project, end to end through its real ASGI application.

Users are real Django users in the test database; their session cookies are made by
Django's test client and read back by gateway's SessionMiddleware/AuthMiddleware.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from gateway.layers import get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.testing import HttpCommunicator, WebsocketCommunicator
from gateway.worker import Worker
from tests.example.asgi import application
from tests.example.consumers import LOG_CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)

Headers = list[tuple[bytes, bytes]]
SAME_ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
async def layer() -> AsyncIterator[BaseChannelLayer]:
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()
    yield layer
    await layer.flush()


async def signed_in(username: str) -> Headers:
    """Headers of a browser tab where ``username`` has logged in."""
    user = await sync_to_async(get_user_model().objects.create_user)(username, password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [SAME_ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())]


@asynccontextmanager
async def in_room(room: str, headers: Headers) -> AsyncIterator[WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def refused(room: str, headers: Headers) -> bool:
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room}/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return not connected


@pytest.fixture
async def chat_log() -> AsyncIterator[asyncio.Queue[str]]:
    """Lines the chat log worker writes, as they are written (from any thread)."""
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    class ToQueue(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            loop.call_soon_threadsafe(lines.put_nowait, record.getMessage())

    handler = ToQueue()
    logger = logging.getLogger("tests.example.chat")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)


async def test_two_users_chat_in_a_room(layer: BaseChannelLayer, unique: str) -> None:
    alice, bob = await signed_in("alice"), await signed_in("bob")

    async with in_room(unique, alice) as alices_tab, in_room(unique, bob) as bobs_tab:
        await alices_tab.send_json_to({"message": "hello bob"})
        for tab in (alices_tab, bobs_tab):
            assert await tab.receive_json_from() == {"username": "alice", "message": "hello bob"}

        await bobs_tab.send_json_to({"message": "hi alice"})
        for tab in (alices_tab, bobs_tab):
            assert await tab.receive_json_from() == {"username": "bob", "message": "hi alice"}


async def test_rooms_are_separate(layer: BaseChannelLayer, unique: str) -> None:
    alice, bob = await signed_in("alice"), await signed_in("bob")

    async with in_room(f"{unique}a", alice) as alices_tab, in_room(f"{unique}b", bob) as bobs_tab:
        await alices_tab.send_json_to({"message": "anyone?"})
        assert await alices_tab.receive_json_from() == {"username": "alice", "message": "anyone?"}
        assert await bobs_tab.receive_nothing()


async def test_anonymous_users_are_refused(layer: BaseChannelLayer, unique: str) -> None:
    assert await refused(unique, [SAME_ORIGIN])


async def test_other_origins_are_refused_even_when_signed_in(
    layer: BaseChannelLayer, unique: str
) -> None:
    alice = await signed_in("alice")
    cookie = alice[1]

    assert await refused(unique, [(b"origin", b"http://evil.test"), cookie])
    assert await refused(unique, [cookie])  # No Origin header at all.
    async with in_room(unique, [(b"origin", b"https://example.com"), cookie]):
        pass  # example.com is in ALLOWED_HOSTS.


async def test_worker_logs_every_message(
    layer: BaseChannelLayer, unique: str, chat_log: asyncio.Queue[str]
) -> None:
    worker = Worker(application, [LOG_CHANNEL], layer)
    await worker.start()
    try:
        async with in_room(unique, await signed_in("alice")) as tab:
            await tab.send_json_to({"message": "first"})
            await tab.send_json_to({"message": "second"})
            async with asyncio.timeout(5):
                assert await chat_log.get() == f"[{unique}] alice: first"
                assert await chat_log.get() == f"[{unique}] alice: second"
    finally:
        await worker.stop(timeout=5)
    assert worker.restarts[LOG_CHANNEL] == 0


async def test_http_is_served_by_django() -> None:
    communicator = HttpCommunicator(
        application, "GET", "/admin/login/", headers=[(b"host", b"testserver")]
    )
    response = await communicator.get_response(timeout=5)

    assert response["status"] == 200
    assert b"csrfmiddlewaretoken" in response["body"]
