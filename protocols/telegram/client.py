"""The Bot API client: python-telegram-bot's ``Bot``, returning raw results.

Calls go to ``<base_url>/<token>/<method>`` (python-telegram-bot's ``base_url``
form), so any Bot API implementation works. Results stay the raw JSON the Bot API
sent (msgpack-safe, as the ``telegram`` spec requires); failures become
:class:`BotApiError` carrying the envelope's ``error_code``, ``description`` and
``parameters`` (https://core.telegram.org/bots/api#making-requests).

:class:`ApiClient` adds flood control and retries (spec §5): it waits for a send
slot, honours ``retry_after`` on 429, retries network errors and 5xx with
exponential backoff, and raises the last error only when retries run out.

Retries and duplicates: a 429 and a request that never left (no connection, pool
full) are certainly not performed, so retrying them is always safe. A timeout, a
connection lost mid-call or a 5xx may come after Telegram acted: retrying a
``sendMessage`` then can deliver it twice. Those *ambiguous* failures are retried
unless the call says ``retry=False`` (the ``"retry": false`` key of an outgoing
event, or ``ServerOptions.retry_ambiguous``), which makes a send at most once.

Exceptions::

    telegram.error.TelegramError
    └── BotApiError        an error envelope, or (error_code 0) a network failure
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from typing import Any

import httpx
from telegram import Bot, InputFile
from telegram.error import TelegramError
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBUserWarning

from gateway.backoff import Backoff
from gateway.failure_log import FailureLog
from protocols.telegram.flood import FloodControl

logger = logging.getLogger("gateway.telegram")

DEFAULT_API_URL = "https://api.telegram.org/bot"


class BotApiError(TelegramError):
    """A Bot API call failed; ``error_code`` is the HTTP status (0: no answer at all)."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    @property
    def retry_after(self) -> float | None:
        value = (self.parameters or {}).get("retry_after")
        return float(value) if isinstance(value, int | float) else None

    def __reduce__(self) -> tuple[type, tuple[int, str, dict[str, Any] | None]]:  # type: ignore[override]
        return self.__class__, (self.error_code, self.description, self.parameters)


class _EnvelopeRequest(HTTPXRequest):
    """Reads error envelopes itself, keeping their code and parameters intact."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        if 200 <= code < 300:
            return code, payload
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BotApiError(code, f"HTTP {code} with a body that is not a Bot API envelope")
        parameters = body.get("parameters")
        raise BotApiError(
            int(body.get("error_code") or code),
            str(body.get("description") or f"HTTP {code}"),
            parameters if isinstance(parameters, dict) else None,
        )


#: ``Bot.do_api_request`` suggests the typed method for each method python-telegram-bot
#: knows ("Please use 'Bot.sendMessage' instead ..."); :meth:`RawBot.call` means to
#: skip them (they turn results into objects), so the hint is silenced for its calls only.
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\.\w+' instead of 'Bot\.do_api_request",
    category=PTBUserWarning,
    module=r"protocols\.telegram\.client$",
)


class RawBot(Bot):
    """A ``Bot`` whose :meth:`call` reaches any method and returns raw JSON.

    It goes through ``Bot.do_api_request`` (python-telegram-bot's public way to call
    any method, since v20.8: its parameter encoding, uploads and timeouts) without a
    ``return_type``, so results stay the JSON Telegram sent, as ``telegram.result``
    carries it.
    """

    async def call(self, method: str, params: dict[str, Any], *, timeout: float = 10.0) -> Any:
        data = {
            key: InputFile(value, filename=params.get("filename") or key)
            if isinstance(value, bytes)
            else value
            for key, value in params.items()
            if key != "filename"
        }
        return await self.do_api_request(method, data, read_timeout=timeout)


class LaneRequest(BaseRequest):
    """Bot API calls spread over ``lanes`` keep-alive connections, one call per lane.

    Each lane is an HTTP client with a single connection; a call takes an idle lane,
    or waits, first come first served, until one is free. This is what one pool of
    ``lanes`` connections does, minus its cost: httpcore's pool re-examines every
    pooled connection (a ``poll()`` of its socket each) whenever any request starts or
    ends, so its overhead per call grows with the pool size, and more connections made
    a bot slower. A lane's pool holds one connection, so that check is made once per call.
    Idle lanes are reused most-recent first, so a quiet bot keeps one warm connection.
    """

    def __init__(self, lanes: int, read_timeout: float | None = 5.0) -> None:
        if lanes < 1:
            raise ValueError(f"a bot needs at least one connection, not {lanes}")
        self.lanes = [
            _EnvelopeRequest(connection_pool_size=1, read_timeout=read_timeout)
            for _ in range(lanes)
        ]
        self._idle: asyncio.LifoQueue[_EnvelopeRequest] = asyncio.LifoQueue()
        for lane in reversed(self.lanes):
            self._idle.put_nowait(lane)

    @property
    def read_timeout(self) -> float | None:
        return self.lanes[0].read_timeout

    async def initialize(self) -> None:
        await asyncio.gather(*(lane.initialize() for lane in self.lanes))

    async def shutdown(self) -> None:
        await asyncio.gather(*(lane.shutdown() for lane in self.lanes))

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        lane = await self._idle.get()
        try:
            return await lane.do_request(*args, **kwargs)
        finally:
            self._idle.put_nowait(lane)


class BotConnection:
    """A :class:`RawBot` and its HTTP clients (``getUpdates`` gets its own, so long
    polls never wait for a lane), closable even if ``initialize`` never ran.

    ``connections`` bounds the calls in flight; more wait their turn in order.
    """

    def __init__(self, token: str, base_url: str = DEFAULT_API_URL, connections: int = 8) -> None:
        self.requests = (
            LaneRequest(connections, read_timeout=10.0),
            _EnvelopeRequest(connection_pool_size=1),
        )
        self.bot = RawBot(
            token,
            base_url=base_url,
            request=self.requests[0],
            get_updates_request=self.requests[1],
        )

    async def close(self) -> None:
        await asyncio.gather(*(request.shutdown() for request in self.requests))


def as_api_error(exc: TelegramError) -> BotApiError:
    if isinstance(exc, BotApiError):
        return exc
    return BotApiError(0, f"{type(exc).__name__}: {exc.message}")


#: httpx errors raised before a request left: Telegram cannot have acted on it.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def never_performed(exc: TelegramError) -> bool:
    """Whether Telegram certainly did not act on the failed call, so a retry cannot
    duplicate it: it answered 429 ("Too Many Requests: retry after N"), or the request
    never left (python-telegram-bot raises its errors ``from`` httpx's)."""
    if isinstance(exc, BotApiError):
        return exc.error_code == 429
    return isinstance(exc.__cause__, _UNSENT)


class ApiClient:
    """Flood-controlled, retrying Bot API calls for one bot (spec §5).

    ``retry_ambiguous=False`` stops retrying failures after which the call may have
    been performed (timeouts, lost connections, 5xx) for calls that do not say
    otherwise; 429s and requests that never left are retried either way.
    """

    def __init__(
        self,
        bot: RawBot,
        flood: FloodControl,
        *,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        retry_ambiguous: bool = True,
    ) -> None:
        self.bot = bot
        self.flood = flood
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_ambiguous = retry_ambiguous
        #: A 429 storm logs a line and then a count a minute, not a line per message.
        self.floods = FailureLog(logger, level=logging.WARNING)

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        retry: bool | None = None,
        until_accepted: bool = False,
    ) -> Any:
        """Call ``method``; raise :class:`BotApiError` once retries are exhausted.

        ``retry`` (None: the client's ``retry_ambiguous``) says whether a failure that
        may have been performed is retried; False makes the call at most once.
        ``until_accepted``: 429s never exhaust the attempts (each waits its
        ``retry_after``), for sends nobody would hear had failed.
        """
        retry_ambiguous = self.retry_ambiguous if retry is None else retry
        chat_id = params.get("chat_id")
        backoff = Backoff(self.backoff, self.max_backoff)
        attempt = 0
        while True:
            attempt += 1
            pause = self.flood.paused_for(chat_id)
            if pause > 0:  # a 429 pause; reserve after it, so the windows see real times
                await asyncio.sleep(pause)
            wait = self.flood.reserve(method, chat_id)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self.bot.call(method, params)
            except TelegramError as exc:
                error = as_api_error(exc)
                unperformed = never_performed(exc)
            flooded = error.error_code == 429
            if attempt >= self.max_attempts and not (flooded and until_accepted):
                raise error
            if flooded:
                retry_after = error.retry_after if error.retry_after is not None else backoff.delay
                self.floods.repeated(
                    "429", f"{method} to {chat_id}: 429, retrying after {retry_after:.1f}s"
                )
                self.flood.pause(chat_id, retry_after)
            elif error.error_code == 0 or error.error_code >= 500:
                if not (unperformed or retry_ambiguous):
                    logger.warning(
                        "%s to %s failed (%s) and may or may not have been performed; "
                        "not retried (retry off)",
                        method,
                        chat_id,
                        error.description,
                    )
                    raise error
                logger.warning(
                    "%s failed (%s), retry in %.1fs", method, error.description, backoff.delay
                )
                await backoff.wait()
            else:
                raise error
