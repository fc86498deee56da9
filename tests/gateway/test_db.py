"""gateway.db: connection hygiene around sync calls, and tests' connections left alone."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections
from django.test import TestCase

from gateway.db import aclose_old_connections, database_sync_to_async
from gateway.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from gateway.testing import WebsocketCommunicator

TIMEOUT = 5


def query_and_return_connection() -> Any:
    """Run a query; return this thread's own connection object (not the proxy)."""
    User.objects.count()
    return connections["default"]


@pytest.mark.django_db(transaction=True)
async def test_database_sync_to_async_closes_the_connection_it_used():
    # CONN_MAX_AGE is 0 in the test settings: the connection is obsolete at once.
    used = await database_sync_to_async(query_and_return_connection)()
    assert used.connection is None


@pytest.mark.django_db(transaction=True)
async def test_plain_sync_to_async_leaves_it_open_which_is_why_this_exists():
    used = await sync_to_async(query_and_return_connection)()
    try:
        assert used.connection is not None
    finally:
        await aclose_old_connections()  # same thread-sensitive thread: closes it
    assert used.connection is None


async def test_no_thread_hop_while_no_connection_is_open():
    # Every socket calls aclose_old_connections twice; with nothing open there is
    # nothing stale, so it must not queue behind the busy thread-sensitive thread.
    connections.close_all()
    await sync_to_async(connections.close_all)()
    busy, release = threading.Event(), threading.Event()

    def occupy_the_database_thread() -> None:
        busy.set()
        release.wait(TIMEOUT)

    occupied = asyncio.ensure_future(sync_to_async(occupy_the_database_thread)())
    try:
        assert await asyncio.to_thread(busy.wait, TIMEOUT)
        await asyncio.wait_for(aclose_old_connections(), TIMEOUT / 5)
    finally:
        release.set()
        await occupied


@pytest.mark.django_db(transaction=True)
async def test_an_open_connection_is_still_closed_in_its_thread():
    used = await sync_to_async(query_and_return_connection)()
    assert used.connection is not None
    await aclose_old_connections()
    assert used.connection is None


class Account(AsyncJsonWebsocketConsumer):
    """Reads users through database_sync_to_async, as Channels' docs show."""

    @database_sync_to_async
    def email_of(self, username: str) -> str:
        return User.objects.get(username=username).email

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # asgiref types the bound method with ``self`` still among its parameters.
        email = await self.email_of(content["username"])  # type: ignore[call-arg]
        await self.send_json({"email": email})


@pytest.mark.django_db(transaction=True)
async def test_database_sync_to_async_decorates_methods():
    await User.objects.acreate(username="grace", email="grace@example.com")
    communicator = WebsocketCommunicator(Account.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_json_to({"username": "grace"})
    assert await communicator.receive_json_from(TIMEOUT) == {"email": "grace@example.com"}
    await communicator.disconnect(timeout=TIMEOUT)
    await aclose_old_connections()


class SyncAccount(JsonWebsocketConsumer):
    """The same lookup in a sync consumer, using the ORM directly."""

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json({"email": User.objects.get(username=content["username"]).email})


class CommunicatorsInsideTestCase(TestCase):
    """A Django TestCase: the test's connection holds the test's transaction.

    Async test methods run on the test's thread, and so do thread-sensitive
    ``database_sync_to_async`` calls: the consumer sees the uncommitted user, and
    the consumer's connection hygiene must not close the test's connection (it
    would break the transaction, and every query after it).
    """

    async def test_consumer_sees_test_data_and_leaves_the_connection_open(self) -> None:
        await User.objects.acreate(username="linus", email="linus@example.com")
        communicator = WebsocketCommunicator(Account.as_asgi(), "/ws/")
        await communicator.connect(TIMEOUT)
        await communicator.send_json_to({"username": "linus"})
        assert await communicator.receive_json_from(TIMEOUT) == {"email": "linus@example.com"}
        await communicator.disconnect(timeout=TIMEOUT)
        # The transaction is intact: the row is still there and queries still work.
        assert await User.objects.filter(username="linus").acount() == 1

    async def test_a_sync_consumer_runs_on_the_tests_thread_by_default(self) -> None:
        # As in Channels: sync handlers run in the thread-sensitive thread, which
        # inside a TestCase async test is the test's own (docs/porting.md).
        await User.objects.acreate(username="ken", email="ken@example.com")
        application = SyncAccount.as_asgi()
        communicator = WebsocketCommunicator(application, "/ws/")
        await communicator.connect(TIMEOUT)
        await communicator.send_json_to({"username": "ken"})
        assert await communicator.receive_json_from(TIMEOUT) == {"email": "ken@example.com"}
        await communicator.disconnect(timeout=TIMEOUT)
        assert await User.objects.filter(username="ken").acount() == 1


class Counter(JsonWebsocketConsumer):
    """Hands the test the connection its handler used (in-process, no encoding)."""

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content == "count":
            User.objects.count()
            self.base_send({"type": "test.connection", "connection": connections["default"]})
        else:
            self.send_json("pong")


@pytest.mark.django_db(transaction=True)
async def test_sync_handlers_close_their_connection_after_each_call():
    communicator = WebsocketCommunicator(Counter.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_json_to("count")
    used = (await communicator.receive_output(TIMEOUT))["connection"]
    await communicator.send_json_to("ping")  # handlers run one at a time: the first is over
    assert await communicator.receive_json_from(TIMEOUT) == "pong"
    assert used.connection is None
    await communicator.disconnect(timeout=TIMEOUT)
