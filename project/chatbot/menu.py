"""The bot's commands and what they do: its Telegram command menu and its /help.

Plain data without Django imports, so ``settings.py`` can hand it to the Telegram
server as ``TELEGRAM_COMMANDS`` (set as the menu each time the server starts).
"""

COMMANDS = {
    "devices": "Your devices, live: tap one for its card",
    "status": "One device's card: /status <device>",
    "subscribe": "Alerts of a device in this chat: /subscribe <device>",
    "unsubscribe": "No more alerts of a device: /unsubscribe <device>",
    "link": "Link this chat to your account: /link <code>",
    "unlink": "Forget the link to your account",
    "cancel": "Stop what the bot is asking for",
    "help": "What this bot does",
}
