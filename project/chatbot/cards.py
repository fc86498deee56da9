"""The bot's messages: texts and inline keyboards, built from data, without I/O.

Button data stays far below Telegram's 64 bytes whatever the device is called: it
names a device by its primary key and a command by its position in the device's
list, ``<action>:<pk>[:<index>]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from project.chatbot.menu import COMMANDS
from project.chatbot.services import CardData
from project.iot.events import AlertInfo
from project.iot.models import Command, CommandStatus, Thing

Keyboard = list[list[tuple[str, str]]]

HELP = "\n".join(
    [
        "I watch and command your devices.",
        "",
        *(f"/{name} - {description}" for name, description in COMMANDS.items()),
    ]
)

NOT_LINKED = (
    "This chat is not linked to an account yet. Open the dashboard, choose "
    "\u201cLink a Telegram chat\u201d and send me the code it shows: /link <code>"
)

STATUS_WORDS = {
    CommandStatus.PENDING: "sent, waiting for the device",
    CommandStatus.ACKNOWLEDGED: "acknowledged",
    CommandStatus.TIMED_OUT: "timed out (no answer from the device)",
    CommandStatus.REFUSED: "refused",
    CommandStatus.FAILED: "failed",
}


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def presence(thing: Thing) -> str:
    return "\u25cf online" if thing.online else "\u25cb offline"


def values_line(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in sorted(values.items())) or "no data yet"


def device_list(things: Sequence[Thing]) -> tuple[str, Keyboard]:
    """The /devices message: one line and one button per device."""
    if not things:
        return "You have no devices yet. Add one on the dashboard.", []
    lines = ["Your devices:"]
    keyboard: Keyboard = []
    for thing in things:
        alerts = getattr(thing, "open_alert_count", 0)
        flag = f" \u26a0 {alerts}" if alerts else ""
        lines.append(f"{presence(thing)}  {thing.name}{flag}: {values_line(thing.last_values)}")
        keyboard.append([(f"{thing.name}{flag}", f"dev:{thing.pk}")])
    return "\n".join(lines), keyboard


def command_line(card: CardData) -> str | None:
    command = card.last_command
    return None if command is None else f"Last command: {command_toast(command)}"


def device_card(card: CardData, now: datetime) -> tuple[str, Keyboard]:
    """A device's status card and its buttons (the time line makes every refresh an edit)."""
    thing = card.thing
    lines = [f"{thing.name} ({thing.device_id}) {presence(thing)}"]
    if thing.last_seen is not None:
        lines.append(f"Last seen {_clock(thing.last_seen)}")
    lines.append(f"Values: {values_line(thing.last_values)}")
    lines.append(
        "Open alerts: " + "; ".join(card.open_alerts) if card.open_alerts else "No open alerts"
    )
    if card.subscribed:
        muted = f", muted until {_clock(card.muted_until)}" if card.muted_until else ""
        lines.append(f"Alerts come to this chat{muted}")
    if (line := command_line(card)) is not None:
        lines.append(line)
    lines.append(f"Updated {_clock(now)}")
    pk = thing.pk
    commands = [(f"\u25b6 {name}", f"cmd:{pk}:{i}") for i, name in enumerate(thing.commands)]
    keyboard: Keyboard = [commands[i : i + 3] for i in range(0, len(commands), 3)]
    if not thing.commands:
        keyboard.append([("\u25b6 Send a command\u2026", f"ask:{pk}")])
    if card.subscribed:
        mute = ("Unmute", f"unmute:{pk}") if card.muted_until else ("Mute 1 h", f"mute:{pk}")
        keyboard.append([("Unsubscribe", f"uns:{pk}"), mute])
    else:
        keyboard.append([("Subscribe to alerts", f"sub:{pk}")])
    keyboard.append([("\u21bb Refresh", f"ref:{pk}"), ("\u00ab Devices", "list")])
    return "\n".join(lines), keyboard


def alert_text(info: AlertInfo) -> str:
    sign = ">" if info["direction"] == "above" else "<"
    if info["state"] == "opened":
        return (
            f"\u26a0 {info['device_name']}: {info['metric']} {info['value']:g} "
            f"{sign} {info['limit']:g}"
        )
    if info["value"] is None:
        return f"\u2714 {info['device_name']}: {info['metric']} alert closed (threshold removed)"
    return f"\u2714 {info['device_name']}: {info['metric']} back to {info['value']:g}"


def alert_keyboard(thing_pk: int) -> Keyboard:
    return [[("Show device", f"show:{thing_pk}")]]


def command_toast(command: Command) -> str:
    """The short answer to the button press (or text) that sent a command."""
    words = STATUS_WORDS.get(CommandStatus(command.status), command.status)
    reason = f": {command.reason}" if command.reason else ""
    return f"{command.name}: {words}{reason}"
