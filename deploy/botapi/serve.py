"""The local Bot API server as a service of the compose stack (docs/deploy.md).

``docker compose up`` with the example ``.env`` runs the bot against this server, so
the stack is whole without a Telegram account: the ``telegram`` service polls it like
the real Bot API, and a person plays a user over HTTP::

    curl 'http://127.0.0.1:8081/_user/local_bot/message?chat_id=1&text=hello'
    curl 'http://127.0.0.1:8081/_user/local_bot/sent?chat_id=1'

It registers one bot, ``TELEGRAM_BOT_TOKEN`` named ``BOTAPI_BOT_USERNAME`` (default
``local_bot``), and listens on ``BOTAPI_HOST``:``BOTAPI_PORT`` (default 0.0.0.0:8081)
until SIGTERM. With a real bot (``TELEGRAM_API_URL=https://api.telegram.org/bot``)
this service is not needed. State lives in memory: a restart forgets the chats.
"""

from __future__ import annotations

import asyncio
import os
import signal

from gateway.botapi import BotAPIServer


async def serve() -> None:
    server = BotAPIServer(
        os.environ.get("BOTAPI_HOST", "0.0.0.0"), int(os.environ.get("BOTAPI_PORT", "8081"))
    )
    username = os.environ.get("BOTAPI_BOT_USERNAME", "local_bot")
    server.add_bot(username, token=os.environ["TELEGRAM_BOT_TOKEN"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"local Bot API server for @{username} listening on port {server.port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve())
