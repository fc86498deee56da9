"""The Telegram interface server: Bot API updates in, ``telegram`` ASGI scopes out.

See docs/specs/telegram.md (the contract) and docs/telegram.md (the guide). Modules:
``server`` (bots, conversations, the ``telegram.send`` channel), ``client`` (the Bot
API client), ``flood`` (pacing), ``webhook`` (the webhook route), ``launcher``
(``gateway telegram``). The pure translation lives in :mod:`gateway.telegram.events`.
"""
