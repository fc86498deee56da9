"""uvicorn's own lifespan driver against a ProtocolTypeRouter without a "lifespan" route."""

import asyncio

import uvicorn
from uvicorn.lifespan.on import LifespanOn

from gateway.routing import ProtocolTypeRouter
from tests.gateway.routing.apps import RecordingApp


async def test_uvicorn_lifespan_on_starts_and_stops_cleanly() -> None:
    config = uvicorn.Config(ProtocolTypeRouter({"http": RecordingApp()}), lifespan="on")
    config.load()
    lifespan = LifespanOn(config)

    async with asyncio.timeout(10):
        await lifespan.startup()
        assert not lifespan.startup_failed
        assert not lifespan.should_exit
        await lifespan.shutdown()

    assert not lifespan.shutdown_failed
