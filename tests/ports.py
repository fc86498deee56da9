"""Ports for servers a test starts in another process (or starts, stops and starts again).

Such a server needs its port named before it binds it, so the test picks one that is
free now. Taken from the kernel's ephemeral range (``bind(0)``), the port could go, in
the meantime, to any outgoing connection of any process on the machine (two suites run
side by side make that likely). Ports below that range are never handed out on their
own, so one that is free now stays free unless someone binds it by name.
"""

from __future__ import annotations

import random
import socket

#: Below Linux's default ephemeral range (32768-60999), above the well-known services.
PORTS = range(20_000, 32_768)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on or is bound to now."""
    for port in random.sample(PORTS, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")
