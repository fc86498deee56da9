"""A local, faithful Telegram Bot API server for tests and offline development.

See :mod:`gateway.testing.botapi.server` and docs/telegram.md ("Trying a bot
without Telegram").
"""

from gateway.testing.botapi.server import BotAPIServer, FloodLimits

__all__ = ["BotAPIServer", "FloodLimits"]
