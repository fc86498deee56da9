"""SIGINT/SIGTERM as an :class:`asyncio.Event`, for whatever runs a process's services.

Both runners of a gateway process wait on one: :class:`protocols.runner.ServiceGroup`
(every ``gateway`` command, ``manage.py runserver``) and
:meth:`gateway.worker.Worker.run` (``manage.py runworker``, Channels' hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while in the block, on the running loop.

    Only the main thread can take signals (and Windows' loops take none): elsewhere
    nothing is installed, and ``stop`` is the caller's to set.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a loop without signals: see above
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
