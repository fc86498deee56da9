"""Interface servers: each turns one wire protocol into ASGI scopes and events.

What every server shares lives here: the :class:`~protocols.service.Service`
contract, the launch layer that builds a process's services from typed options
(:mod:`protocols.launch`), the runner that starts them and shuts them down
gracefully, in the foreground or a background thread (:mod:`protocols.runner`:
``ServiceGroup``, ``ServiceThread``), and the per-scope application-instance
manager (:mod:`protocols.instances`).
"""
