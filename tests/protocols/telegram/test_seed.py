"""The seed example of DESIGN.md §4, exactly as written, end to end over HTTP."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.botapi import BotAPIServer
from gateway.consumer import SyncConsumer
from gateway.routing import ProtocolTypeRouter
from tests.protocols.telegram.conftest import serving, serving_webhook


class ChattyBotConsumer(SyncConsumer):
    def telegram_message(self, message):
        self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})  # noqa: UP031


application = ProtocolTypeRouter({"telegram": ChattyBotConsumer.as_asgi()})


@pytest.mark.parametrize("transport", ["polling", "webhook"])
@pytest.mark.parametrize("end", ["idle timeout", "shutdown"])
async def test_seed_example_whole_scope_lifetime_without_errors(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture, end: str, transport: str
) -> None:
    caplog.set_level(logging.DEBUG)
    token = api.add_bot("chatty_bot")
    idle = 0.3 if end == "idle timeout" else None
    serve = serving if transport == "polling" else serving_webhook
    async with serve(application, api, token, idle_timeout=idle) as server:
        api.user_message(token, "hi", chat_id=42)
        sent = await api.wait_sent(token, 42)
        assert [m["text"] for m in sent] == ["You said: hi"]
        (instance,) = server.runners[0].manager.instances.values()
        assert instance.scope["chat"]["id"] == 42
        if end == "idle timeout":
            async with asyncio.timeout(5):
                await asyncio.shield(instance.task)
    assert instance.done
    assert instance.failed is None
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []
