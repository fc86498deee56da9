"""The application the runserver test serves: answers HTTP and accepts WebSockets."""

from __future__ import annotations

from gateway.types import Receive, Scope, Send


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"served by gateway"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        if message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
            await receive()
    else:
        raise ValueError(f"unsupported scope type {scope['type']!r}")
