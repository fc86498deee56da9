"""Room for the connections a server may hold: each is a file descriptor.

A connection limit only protects a process if the process can reach it: with the
usual soft ``RLIMIT_NOFILE`` of 1,024, ``accept()`` fails with EMFILE (asyncio then
logs an error and stops accepting for a second) long before a limit of thousands.
Like Go's runtime (since 1.19) and as systemd advises for programs that need many
descriptors, the server raises its soft limit towards the hard limit at start, and
warns once when even the hard limit is too low.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("gateway.server")

#: Descriptors kept for everything but clients: files, database, Redis, broker links.
RESERVE = 256


def ensure_fd_limit(connections: int, who: str) -> int | None:
    """Make the soft descriptor limit fit ``connections`` plus :data:`RESERVE`.

    Returns the soft limit in force afterwards (None where there is no such limit).
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logger.warning(
            "%s: up to %d connections, but this process may open only %d files "
            "(ulimit -n); lower the connection limit or raise the hard limit",
            who,
            connections,
            soft,
        )
    return int(soft)
