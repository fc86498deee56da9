"""Test an HTTP application with one request, without a server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.testing.application import ApplicationCommunicator, path_scope_keys
from gateway.types import ASGIApp
from gateway.web.events import body_of, headers_of, http_disconnect_event, http_scope, request_event

__all__ = ["HttpCommunicator"]


class HttpCommunicator(ApplicationCommunicator):
    """One HTTP request to one application instance::

        communicator = HttpCommunicator(application, "GET", "/status/")
        response = await communicator.get_response()
        assert response["status"] == 200 and response["body"] == b"ok"

    For streamed responses (server-sent events) call :meth:`send_request` and
    read the ``http.response.*`` messages with ``receive_output``.
    """

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if not isinstance(body, bytes):
            raise TypeError(f"The request body must be bytes, not {type(body).__name__}")
        super().__init__(
            application,
            dict(
                http_scope(
                    method=method.upper(), **path_scope_keys(path), headers=list(headers or [])
                )
            ),
        )
        self.body = body
        self.sent_request = False

    async def send_request(self) -> None:
        """Send the request (once): its whole body in one ``http.request``."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input(dict(request_event(self.body)))

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """The whole response: ``{"status", "headers", "body"}``.

        Once the response is complete the client is gone, as the ASGI spec has
        it: ``http.disconnect`` is sent and the application must then exit
        within ``timeout``.
        """
        await self.send_request()
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected http.response.start, got {start!r}")
        chunks = []
        while True:
            chunk = await self.receive_output(timeout)
            if chunk["type"] != "http.response.body":
                raise AssertionError(f"Expected http.response.body, got {chunk!r}")
            body, more_body = body_of(chunk)
            chunks.append(body)
            if not more_body:
                break
        if not self.future.done():
            await self.send_input(dict(http_disconnect_event()))
        await self.wait(timeout)
        return {
            "status": start["status"],
            "headers": list(headers_of(start)),
            "body": b"".join(chunks),
        }
