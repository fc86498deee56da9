"""429 storms, Bot API restarts, poller conflicts, failing consumers, scope limits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from gateway.botapi import BotAPIServer, EnforcedLimits
from gateway.consumer import AsyncConsumer
from gateway.exceptions import StopConsumer
from gateway.layers import get_channel_layer
from tests.protocols.telegram.conftest import serving


class Echo(AsyncConsumer):
    async def telegram_message(self, message: dict[str, Any]) -> None:
        if message["text"] == "boom":
            raise RuntimeError("consumer failure")
        await self.send({"type": "telegram.message", "text": f"echo {message['text']}"})


class Recorder(AsyncConsumer):
    """Sends with a request_id and records every event it gets in ``events``."""

    events: asyncio.Queue[tuple[Any, dict[str, Any]]] | None = None

    async def telegram_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "telegram.message", "text": "x", "request_id": message["text"]})

    async def telegram_result(self, message: dict[str, Any]) -> None:
        await self.record(message)

    async def telegram_disconnect(self, message: dict[str, Any]) -> None:
        await self.record(message)

    async def record(self, message: dict[str, Any]) -> None:
        assert self.events is not None
        await self.events.put((self.scope["chat"]["id"], message))


def recorder() -> tuple[Any, asyncio.Queue[tuple[Any, dict[str, Any]]]]:
    events: asyncio.Queue[tuple[Any, dict[str, Any]]] = asyncio.Queue()
    return Recorder.as_asgi(events=events), events


async def test_429_storm_is_absorbed_in_order(caplog: pytest.LogCaptureFixture) -> None:
    limits = EnforcedLimits(per_chat_per_second=3, retry_after=0.1)
    async with BotAPIServer(limits=limits) as api:
        token = api.add_bot("b")
        async with serving(Echo.as_asgi(), api, token, max_attempts=30):
            for n in range(8):
                api.user_message(token, str(n), chat_id=3)
            sent = await api.wait_sent(token, 3, 8, timeout=10)
    assert [m["text"] for m in sent] == [f"echo {n}" for n in range(8)]
    assert any("429" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_429_reaches_the_consumer_only_when_retries_run_out() -> None:
    limits = EnforcedLimits(per_chat_per_second=1, retry_after=30)
    async with BotAPIServer(limits=limits, clock=lambda: 0.0) as api:
        token = api.add_bot("b")
        app, events = recorder()
        async with serving(app, api, token, max_attempts=1):
            api.user_message(token, "first", chat_id=4)
            api.user_message(token, "second", chat_id=4)
            async with asyncio.timeout(5):
                results = [(await events.get())[1] for _ in range(2)]
    assert [(r["request_id"], r["ok"]) for r in results] == [("first", True), ("second", False)]
    assert results[1]["error_code"] == 429
    assert results[1]["parameters"] == {"retry_after": 30}


async def test_bot_api_server_restart_is_survived(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.add_bot("b")
    async with serving(Echo.as_asgi(), api, token):
        api.user_message(token, "before", chat_id=5)
        await api.wait_sent(token, 5)
        await api.stop()
        api.user_message(token, "during", chat_id=5)  # queued by the API while it is down
        await api.start()
        sent = await api.wait_sent(token, 5, 2)
    assert [m["text"] for m in sent] == ["echo before", "echo during"]


async def test_poller_conflict_is_reported_clearly_and_recovers(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.add_bot("b")
    async with serving(Echo.as_asgi(), api, token):
        await api.wait_polling(token)
        async with httpx.AsyncClient() as rival:
            await rival.post(f"{api.base_url}{token}/getUpdates", json={"timeout": 0})
        async with asyncio.timeout(5):
            while not any("409" in r.getMessage() for r in caplog.records):
                await api.wait_polling(token)
                await asyncio.sleep(0.01)
        api.user_message(token, "still there?", chat_id=6)
        (reply,) = await api.wait_sent(token, 6)
    conflict = next(r for r in caplog.records if "409" in r.getMessage())
    assert conflict.levelno == logging.ERROR
    assert "Another process polls with this token" in conflict.getMessage()
    assert token.split(":")[1] not in caplog.text  # no secret in the log
    assert reply["text"] == "echo still there?"


async def test_failing_consumer_loses_only_the_update_it_failed_on(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.add_bot("b")
    async with serving(Echo.as_asgi(), api, token):
        api.user_message(token, "boom", chat_id=7)
        api.user_message(token, "after", chat_id=7)
        api.inject(token, "brand_new_update_kind", {"chat": {"id": 8, "type": "private"}})
        api.user_message(token, "other", chat_id=8)
        assert [m["text"] for m in await api.wait_sent(token, 7)] == ["echo after"]
        assert [m["text"] for m in await api.wait_sent(token, 8)] == ["echo other"]
    assert "consumer failure" in caplog.text
    assert "No handler for message type telegram.update" in caplog.text


async def test_least_recently_used_scope_is_ended_with_disconnect(api: BotAPIServer) -> None:
    token = api.add_bot("b")
    app, events = recorder()
    async with serving(app, api, token, max_instances=1):
        api.user_message(token, "a", chat_id=10)
        async with asyncio.timeout(5):
            assert (await events.get())[0] == 10
            api.user_message(token, "b", chat_id=11)
            got = [await events.get(), await events.get()]
    assert (10, {"type": "telegram.disconnect", "reason": "evicted"}) in got


async def test_any_process_sends_through_the_telegram_send_channel(api: BotAPIServer) -> None:
    token = api.add_bot("alerts_bot")
    layer = get_channel_layer()
    assert layer is not None
    async with serving(Echo.as_asgi(), api, token, channel_layer="default"):
        api.user_message(token, "/subscribe", chat_id=12)
        await api.wait_sent(token, 12)
        reply_to = await layer.new_channel()
        await layer.send(
            "telegram.send",
            {"type": "telegram.message", "chat_id": 12, "text": "Temperature alert"},
        )
        await layer.send("telegram.send", {"type": "telegram.message", "text": "no chat"})
        await layer.send(
            "telegram.send",
            {
                "type": "telegram.message",
                "chat_id": 999,
                "text": "unknown chat",
                "bot": "alerts_bot",
                "request_id": 1,
                "reply_channel": reply_to,
            },
        )
        sent = await api.wait_sent(token, 12, 2)
        async with asyncio.timeout(5):
            result = await layer.receive(reply_to)
    assert sent[-1]["text"] == "Temperature alert"
    assert (result["ok"], result["error_code"]) == (False, 400)


async def test_a_refused_token_fails_start_with_one_clear_line(api: BotAPIServer) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="refused bot 4242 \\(Unauthorized\\)"):
        async with serving(Echo.as_asgi(), api, "4242:not-registered"):
            pass


async def test_flood_control_paces_sends_so_telegram_never_answers_429(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from protocols.telegram.flood import FloodLimits, Window

    limits = EnforcedLimits(per_chat_per_second=1, retry_after=5)
    async with BotAPIServer(limits=limits) as api:
        token = api.add_bot("b")
        # 1.2 s apart: arrival jitter can never put two sends in one of its 1 s windows
        pacing = FloodLimits(overall=None, per_chat=Window(1, 1.2), per_group=None)
        async with serving(Echo.as_asgi(), api, token, flood_limits=pacing, max_attempts=1):
            for n in range(3):
                api.user_message(token, str(n), chat_id=13)
            sent = await api.wait_sent(token, 13, 3, timeout=10)
    assert [m["text"] for m in sent] == ["echo 0", "echo 1", "echo 2"]
    assert "429" not in caplog.text


class StopsAfterEach(AsyncConsumer):
    async def telegram_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "telegram.message", "text": f"once {message['text']}"})
        raise StopConsumer


async def test_a_consumer_that_stops_early_loses_no_queued_update(api: BotAPIServer) -> None:
    token = api.add_bot("b")
    async with serving(StopsAfterEach.as_asgi(), api, token):
        for n in range(3):
            api.user_message(token, str(n), chat_id=14)
        sent = await api.wait_sent(token, 14, 3)
    assert [m["text"] for m in sent] == ["once 0", "once 1", "once 2"]
