"""gateway.routing.bot: BotRouter, routing each scope by the bot it is for."""

from __future__ import annotations

import pytest

from gateway.routing import BotRouter
from gateway.testing import TelegramCommunicator
from tests.gateway.generic.test_telegram import Menu


async def test_bot_router_refuses_unknown_bots() -> None:
    router = BotRouter({"known_bot": Menu.as_asgi()})
    bot = TelegramCommunicator(router, bot_username="stranger_bot")
    with pytest.raises(ValueError, match="No route for bot @stranger_bot"):
        await bot.wait()
