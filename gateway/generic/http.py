"""An async HTTP consumer: whole-body requests, plain or streamed responses.

The request body arrives in ``http.request`` chunks (ASGI HTTP spec); they are
joined and handed to :meth:`AsyncHttpConsumer.handle` once ``more_body`` is false.
The body is bounded by ``max_body_size`` (default: Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE``); a larger body is answered with 413 and never
reaches ``handle``.

The response is ``send_headers`` then one or more ``send_body`` calls. A response
left open (``more_body=True``) when ``handle`` returns stays open: the consumer
keeps running, and handlers for channel-layer messages may stream more of it
(server-sent events, long polling) until a final ``send_body`` or the client's
``http.disconnect`` ends the consumer. Channels 4.3 ends the consumer as soon as
``handle`` returns, so only ``handle`` itself could stream.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from typing import Any, cast

from django.conf import settings

from gateway.consumer import AsyncConsumer
from gateway.exceptions import StopConsumer
from gateway.types import Message
from gateway.web.events import body_of, response_body, response_start

__all__ = ["AsyncHttpConsumer"]

Headers = Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]


class ResponseState(enum.Enum):
    NOT_STARTED = "not started"
    HEADERS_SENT = "started"
    FINISHED = "finished"


class AsyncHttpConsumer(AsyncConsumer):
    """Override :meth:`handle`; answer with :meth:`send_response` or stream."""

    #: Largest request body accepted, in bytes; None means
    #: ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (which may itself be None: unbounded).
    max_body_size: int | None = None

    # The request's state starts with the instance, not in __call__: a consumer built
    # and driven by hand (``base_send`` assigned, ``send_response()`` called, as some
    # libraries' tests do) works as in Channels. One instance serves one request.
    _body_size = 0
    _request_complete = False
    _response_state = ResponseState.NOT_STARTED

    @functools.cached_property
    def body(self) -> list[bytes]:
        """The request body's chunks received so far."""
        return []

    # The response -----------------------------------------------------------

    async def send_headers(self, *, status: int = 200, headers: Headers | None = None) -> None:
        """Start the response. Headers are a list of (name, value) or a dict, as bytes.

        The server sends them with the first body chunk (ASGI HTTP spec).
        """
        if self._response_state is not ResponseState.NOT_STARTED:
            raise RuntimeError("send_headers() called twice: the response has already started")
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        await self.send(cast(Message, response_start(status, header_list)))
        self._response_state = ResponseState.HEADERS_SENT

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a chunk of the body; ``more_body=True`` keeps the response open."""
        if not isinstance(body, bytes):
            raise TypeError(f"The response body must be bytes, not {type(body).__name__}")
        if self._response_state is ResponseState.NOT_STARTED:
            raise RuntimeError("send_body() before send_headers(): start the response first")
        if self._response_state is ResponseState.FINISHED:
            raise RuntimeError("send_body() after the response finished (more_body was False)")
        await self.send(cast(Message, response_body(body, more_body)))
        if not more_body:
            self._response_state = ResponseState.FINISHED

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        """A whole response at once: ``send_headers(status=status, **kwargs)`` then the body."""
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    # Hooks ------------------------------------------------------------------

    async def handle(self, body: bytes) -> None:
        """Answer the request, whose complete body is ``body``."""
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide a handle() method.")

    async def disconnect(self) -> None:
        """Called once when the consumer ends (response finished or client gone)."""

    # Events -----------------------------------------------------------------

    def _body_limit(self) -> int | None:
        if self.max_body_size is not None:
            return self.max_body_size
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return limit

    async def http_request(self, message: Message) -> None:
        chunk, more_body = body_of(message)
        self._body_size += len(chunk)
        limit = self._body_limit()
        if limit is not None and self._body_size > limit:
            await self.send_response(413, b"Request body too large")
            return
        self.body.append(chunk)
        if not more_body:
            self._request_complete = True
            await self.handle(b"".join(self.body))

    async def http_disconnect(self, message: Message) -> None:
        """The client went away; the consumer ends after this."""

    async def dispatch(self, message: Message) -> None:
        """Dispatch, then end once the response is over or can no longer start."""
        try:
            await super().dispatch(message)
        except BaseException:
            await self.disconnect()
            raise
        finished = self._response_state is ResponseState.FINISHED
        abandoned = self._request_complete and self._response_state is ResponseState.NOT_STARTED
        if finished or abandoned:
            await self.disconnect()
            raise StopConsumer()
