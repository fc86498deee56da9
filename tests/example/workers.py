"""The background worker: ``runworker chat.log`` (or ``gateway worker chat.log``) runs it."""

import logging

from gateway.consumer import SyncConsumer

logger = logging.getLogger("tests.example.chat")


class ChatLogConsumer(SyncConsumer):
    def chat_log(self, message):
        logger.info("[%s] %s: %s", message["room"], message["username"], message["message"])
