"""Interface servers: each turns one wire protocol into ASGI scopes and events.

What every server shares lives here: the :class:`~protocols.service.Service`
contract and the runner that starts services and shuts them down gracefully
(:mod:`protocols.runner`), and the per-scope application-instance manager
(:mod:`protocols.instances`).
"""
