"""Tests of gateway.botapi: the local Bot API server, checked against python-telegram-bot."""
