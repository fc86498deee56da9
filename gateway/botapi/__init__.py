"""A local, faithful Telegram Bot API server for offline development and tests.

What ``gateway telegram --local-api`` runs, so it ships with the framework rather
than with the test tools (:mod:`gateway.testing` is for tests only). See
:mod:`gateway.botapi.server` and docs/telegram.md ("Trying a bot without Telegram").
"""

from gateway.botapi.server import BotAPIServer, EnforcedLimits

__all__ = ["BotAPIServer", "EnforcedLimits"]
