"""The contract between the process runner and each long-running part of it."""

from __future__ import annotations

import abc

from gateway.startup import Summary


class Service(abc.ABC):
    """A long-running part of a gateway process: an interface server or a worker.

    The runner calls :meth:`start` once, then :meth:`stop` once on shutdown;
    :meth:`describe` contributes to the summary printed once everything started.
    ``start`` returns as soon as the service is serving (sockets bound, broker
    connected, poller started); failures to start raise. ``stop`` stops taking new
    work, lets in-flight work finish within ``timeout`` seconds, then cancels what
    is left; it never raises for a well-behaved application.
    """

    #: Short name used in log lines ("web", "mqtt", "telegram", "worker").
    name: str = "service"

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self, timeout: float) -> None: ...

    async def ready(self) -> str | None:
        """None when what this service depends on answers now, else why not, in a few
        words and without secrets (``/readyz``: :mod:`protocols.readiness`).

        Services with no dependency beyond the channel layer and the database (which
        the probe checks itself) keep this default.
        """
        return None

    def describe(self, summary: Summary) -> None:
        """Add what a person needs to know once it serves: addresses, risky settings.

        Called after every service of the process has started; never show a secret.
        Services with nothing to add keep this default.
        """
        return None
