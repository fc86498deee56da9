import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.consumer import AsyncConsumer
from gateway.routing import ChannelNameRouter, ProtocolTypeRouter
from tests.gateway.routing.apps import RecordingApp, never_receive, never_send


async def test_dispatches_on_scope_type() -> None:
    websocket, http = RecordingApp("websocket"), RecordingApp("http")
    router = ProtocolTypeRouter({"websocket": websocket, "http": http})

    await router({"type": "websocket", "path": "/"}, never_receive, never_send)

    assert websocket.scope == {"type": "websocket", "path": "/"}
    assert http.scopes == []
    assert router.application_mapping == {"websocket": websocket, "http": http}


async def test_unknown_scope_type_is_a_clear_error() -> None:
    router = ProtocolTypeRouter({"http": RecordingApp()})

    with pytest.raises(ValueError, match=r"No application configured for scope type 'mqtt'"):
        await router({"type": "mqtt"}, never_receive, never_send)


async def test_unrouted_lifespan_is_acknowledged() -> None:
    router = ProtocolTypeRouter({"http": RecordingApp()})
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await inbox.put({"type": "lifespan.startup"})
    await inbox.put({"type": "lifespan.shutdown"})
    async with asyncio.timeout(5):
        await router({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)

    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_routed_lifespan_goes_to_its_application() -> None:
    lifespan = RecordingApp()
    router = ProtocolTypeRouter({"lifespan": lifespan})

    await router({"type": "lifespan"}, never_receive, never_send)

    assert lifespan.scope == {"type": "lifespan"}


def test_consumer_class_without_as_asgi_fails_at_construction() -> None:
    class Consumer(AsyncConsumer):
        pass

    with pytest.raises(ImproperlyConfigured, match=r"Did you mean Consumer\.as_asgi\(\)\?"):
        ProtocolTypeRouter({"websocket": Consumer})  # type: ignore[dict-item]


def test_non_asgi_callables_fail_at_construction() -> None:
    def view(request: object) -> None: ...

    with pytest.raises(ImproperlyConfigured, match=r"\['http'\].*not an ASGI 3 application"):
        ProtocolTypeRouter({"http": view})  # type: ignore[dict-item]
    with pytest.raises(ImproperlyConfigured, match="not callable"):
        ProtocolTypeRouter({"http": "myapp.asgi"})  # type: ignore[dict-item]


def test_consumer_applications_are_accepted() -> None:
    class Consumer(AsyncConsumer):
        pass

    application = Consumer.as_asgi()
    router = ProtocolTypeRouter({"channel": ChannelNameRouter({"work": application})})

    assert isinstance(router.application_mapping["channel"], ChannelNameRouter)
