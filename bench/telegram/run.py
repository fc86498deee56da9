"""Echo bots through the local Bot API server: gateway against plain python-telegram-bot.

    .venv/bin/python -m bench.telegram.run [--updates 1000] [--chats 100]

The local Bot API server (flood limits off) runs in a child process, so the bot
being measured has the parent process to itself. For each contender the child
injects ``--updates`` user messages spread over ``--chats`` private chats at once,
stamps each reply as the bot sends it, and reports updates/s (first injection to
last reply), reply latency p50/p99 (injection to reply, so it includes queueing
behind the burst) and whether every chat got its replies in order. A warm-up round
of one update per chat runs first; contenders run interleaved ``--repeat`` times and
the medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[],
    CHANNEL_LAYERS={"default": {"BACKEND": "gateway.layers.InMemoryChannelLayer"}},
    USE_TZ=True,
)
django.setup()

from gateway.botapi import BotAPIServer  # noqa: E402
from gateway.consumer import AsyncConsumer, SyncConsumer  # noqa: E402
from protocols.telegram.flood import FloodLimits  # noqa: E402
from protocols.telegram.server import BotConfig, ServerOptions, TelegramServer  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

# --- the Bot API side (child process) ---------------------------------------------


async def _round(api: BotAPIServer, token: str, chats: int, per_chat: int) -> dict[str, Any]:
    injected: dict[str, float] = {}
    replies: dict[int, list[str]] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    total = chats * per_chat

    def on_sent(bot_token: str, message: dict[str, Any]) -> None:
        if bot_token != token:
            return
        text = str(message.get("text", "")).removeprefix("You said: ")
        latencies.append(time.perf_counter() - injected[text])
        replies.setdefault(message["chat"]["id"], []).append(text)
        if len(latencies) == total:
            done.set()

    api.sent_listeners.append(on_sent)
    start = time.perf_counter()
    try:
        for n in range(per_chat):
            for chat in range(1, chats + 1):
                text = f"{chat}-{n}"
                injected[text] = time.perf_counter()
                api.user_message(token, text, chat_id=chat)
        async with asyncio.timeout(120):
            await done.wait()
    finally:
        api.sent_listeners.remove(on_sent)
    elapsed = time.perf_counter() - start
    in_order = all(
        texts == [f"{chat}-{n}" for n in range(per_chat)] for chat, texts in replies.items()
    )
    latencies.sort()
    return {
        "updates_per_s": total / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "in_order": in_order and len(replies) == chats,
    }


def api_process(conn: Connection) -> None:
    async def main() -> None:
        async with BotAPIServer() as api:
            conn.send(api.base_url)
            while True:
                command = await asyncio.to_thread(conn.recv)
                if command[0] == "stop":
                    return
                if command[0] == "add_bot":
                    conn.send(api.add_bot(command[1]))
                elif command[0] == "round":
                    conn.send(await _round(api, *command[1:]))

    asyncio.run(main())


# --- the contenders (parent process) ----------------------------------------------


class Echo(AsyncConsumer):
    async def telegram_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "telegram.message", "text": message["text"]})


class ChattyBotConsumer(SyncConsumer):
    def telegram_message(self, message: dict[str, Any]) -> None:
        self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})  # noqa: UP031


DEFAULT_CONNECTIONS = ServerOptions().connections


async def gateway_bot(app: Any, token: str, base_url: str, connections: int) -> Any:
    options = ServerOptions(
        poll_timeout=10,
        flood_limits=FloodLimits.off(),
        channel_layer=None,
        connections=connections,
    )
    server = TelegramServer(app, [BotConfig(token, base_url)], options)
    await server.start()
    return server.stop


async def ptb_bot(token: str, base_url: str, concurrent: bool) -> Any:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(update.message.text or "")

    builder = ApplicationBuilder().token(token).base_url(base_url)
    application = builder.concurrent_updates(concurrent).build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0, timeout=10)

    async def stop(timeout: float) -> None:
        assert application.updater is not None
        await application.updater.stop()
        await application.stop()
        await application.shutdown()

    return stop


CONTENDERS = {
    f"gateway AsyncConsumer echo ({DEFAULT_CONNECTIONS} connections, default)": lambda t, u: (
        gateway_bot(Echo.as_asgi(), t, u, DEFAULT_CONNECTIONS)
    ),
    "gateway AsyncConsumer echo (1 connection)": lambda t, u: gateway_bot(Echo.as_asgi(), t, u, 1),
    "gateway seed ChattyBotConsumer (sync, default)": lambda t, u: gateway_bot(
        ChattyBotConsumer.as_asgi(), t, u, DEFAULT_CONNECTIONS
    ),
    "python-telegram-bot Application (default)": lambda t, u: ptb_bot(t, u, False),
    "python-telegram-bot Application (concurrent_updates)": lambda t, u: ptb_bot(t, u, True),
}


async def request(conn: Connection, *command: Any) -> Any:
    conn.send(command)
    return await asyncio.to_thread(conn.recv)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (this machine is shared, so single rounds are noisy)."""
    return {
        key: statistics.median(r[key] for r in rounds)
        for key in ("updates_per_s", "p50_ms", "p99_ms")
    } | {"in_order": all(r["in_order"] for r in rounds), "rounds": len(rounds)}


async def main(updates: int, chats: int, repeat: int) -> None:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=api_process, args=(child,), daemon=True)
    process.start()
    base_url = await asyncio.to_thread(parent.recv)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    try:
        for _ in range(repeat):  # interleaved, so drifting load hits every contender alike
            for name, start in CONTENDERS.items():
                token = await request(parent, "add_bot", "bench_bot")
                stop = await start(token, base_url)
                try:
                    await request(parent, "round", token, chats, 1)  # warm-up
                    result = await request(parent, "round", token, chats, updates // chats)
                finally:
                    await stop(5)
                rounds[name].append(result)
                print(f"{name}: {result}", flush=True)
    finally:
        parent.send(("stop",))
        process.join(10)
    results = {name: summarize(r) for name, r in rounds.items()}
    baseline = results["python-telegram-bot Application (default)"]["updates_per_s"]
    print(f"\n{updates} updates across {chats} chats, flood limits off, median of {repeat}\n")
    print("| bot | updates/s | vs PTB default | p50 ms | p99 ms | per-chat order |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['updates_per_s']:.0f} | {r['updates_per_s'] / baseline:.2f} "
            f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {'kept' if r['in_order'] else 'BROKEN'} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per contender")
    parser.add_argument("--only", help="run only contenders whose name contains this")
    arguments = parser.parse_args()
    if arguments.only:
        for name in [n for n in CONTENDERS if arguments.only not in n and "default" not in n]:
            del CONTENDERS[name]
    asyncio.run(main(arguments.updates, arguments.chats, arguments.repeat))
