"""The IoT app's service layer: what the dashboard, the chatbot and the admin call.

Sync functions (ORM, any process); the ``a``-prefixed twins run them in a
thread for async callers (consumers). Visibility is checked here, once:
:func:`visible_things` and :func:`thing_for` show staff every device and
everyone else their own, and another user's device looks like one that does
not exist. Functions that take a ``Thing`` trust the caller to have got it
from there.

Changes are announced on the channel layer (``project.iot.events``) from the
calling process, and commands are published through the MQTT server's fixed
channel, so all of this works from any process of a deployment.

Example::

    thing, secret = create_thing(user, "boiler-1", "Boiler", commands=["reboot"])
    # show `secret` once: only its hash is stored
    set_threshold(thing, "temperature", "above", 80, hysteresis=2)
    command = send_command(thing, "reboot", {"delay": 5}, user=user, via="telegram")
    command.status  # "pending" (or "refused" with a reason: offline, unknown name)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from gateway.db import database_sync_to_async
from gateway.devices.credentials import generate_token
from gateway.devices.models import Device
from gateway.exceptions import ChannelFull, ChannelLayerUnavailable
from gateway.layers import get_channel_layer
from gateway.mqtt.events import PUBLISH_CHANNEL
from gateway.types import Message
from project.iot.alerts import clear_alerts_of
from project.iot.commands import (
    command_payload,
    command_topic,
    expire_overdue,
    is_json_object,
    publish_message,
    refusal,
)
from project.iot.conf import iot_settings
from project.iot.events import (
    ALERTS_GROUP,
    COMMANDS_GROUP,
    DeviceSummary,
    alert_event,
    alert_info,
    command_event,
    command_info,
    device_group,
    device_summary,
)
from project.iot.hysteresis import as_direction
from project.iot.live import broadcast
from project.iot.models import (
    NAME_MAX_LENGTH,
    Alert,
    Command,
    CommandStatus,
    Reading,
    Thing,
    Threshold,
    Via,
)
from project.iot.payloads import NAME
from project.traffic import traffic

logger = logging.getLogger("project.iot")

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_stubs_ext import WithAnnotations

#: Whoever looks: a logged-in user, or anonymous (who sees nothing).
Viewer: TypeAlias = "User | AnonymousUser"

#: The MQTT rules of every device's credentials ({username} is its device id):
#: it publishes its telemetry, status, acks (and its Last Will) under its own
#: topics, and subscribes to its commands only.
PUBLISH_RULES = "devices/{username}/#"
SUBSCRIBE_RULES = "devices/{username}/commands"
#: The window :func:`recent_readings` returns by default, and its most points.
RECENT = timedelta(hours=1)
RECENT_POINTS = 2000


def _announce(event: Message, *groups: str) -> None:
    """Send ``event`` to ``groups`` from sync code; a layer outage is logged, not raised
    (the database already holds the change)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(broadcast)(layer, event, groups)
    except (ChannelFull, ChannelLayerUnavailable) as exc:
        logger.warning("iot: %s not announced: %s", event["type"], exc)


# -- devices and credentials -------------------------------------------------------


def provision(thing: Thing) -> str:
    """Save a new ``thing`` with fresh MQTT credentials; return the secret.

    The secret is a generated token (``gateway.devices.credentials``: 256 random
    bits, checked with one SHA-256 at each connect, so a reconnecting fleet costs
    nothing), returned once; only its hash is stored: show it to the user now.
    Validates ``thing`` first (``ValidationError``), credentials included.
    """
    thing.full_clean(exclude=["credentials"])
    secret = generate_token()
    with transaction.atomic():
        thing.credentials = Device.objects.create_device(
            thing.device_id,
            secret,
            publish_topics=PUBLISH_RULES,
            subscribe_topics=SUBSCRIBE_RULES,
        )
        thing.save()
    return secret


def create_thing(
    owner: User, device_id: str, name: str, *, commands: Iterable[str] = ()
) -> tuple[Thing, str]:
    """A new device owned by ``owner``, and its MQTT secret (shown once)."""
    thing = Thing(device_id=device_id, name=name, owner=owner, commands=list(commands))
    return thing, provision(thing)


def reset_credentials(thing: Thing) -> str:
    """A new MQTT secret for ``thing`` (the old one stops working at its next connect)."""
    secret = generate_token()
    device = thing.credentials
    device.set_password(secret)
    device.save(update_fields=["password"])
    return secret


def visible_things(user: Viewer) -> QuerySet[Thing]:
    """Every device for active staff, the user's own for others, none for anonymous."""
    if not user.is_authenticated or not user.is_active:
        return Thing.objects.none()
    if getattr(user, "is_staff", False):
        return Thing.objects.all()
    return Thing.objects.filter(owner_id=user.pk)


def thing_for(user: Viewer, device_id: str) -> Thing:
    """The device ``user`` may see; ``Thing.DoesNotExist`` otherwise, also when it is
    another user's (which must look like a device that does not exist)."""
    return visible_things(user).select_related("credentials").get(device_id=device_id)


class OpenAlertCount(TypedDict):
    open_alert_count: int


def with_open_alert_counts(
    things: QuerySet[Thing],
) -> QuerySet[WithAnnotations[Thing, OpenAlertCount]]:
    """``things``, each with ``open_alert_count``: how many of its alerts are open."""
    return things.annotate(
        open_alert_count=Count("alerts", filter=Q(alerts__cleared_at__isnull=True))
    )


def summaries(user: Viewer) -> list[DeviceSummary]:
    """The ``iot.device`` summary of each visible device: a page's state before live updates."""
    things = with_open_alert_counts(visible_things(user))
    # Meta.ordering does not apply to a GROUP BY query: without this the order is the
    # database's whim (PostgreSQL's hash aggregate), and fleet pages would shuffle.
    return [device_summary(t, t.open_alert_count) for t in things.order_by("device_id")]


# -- commands ------------------------------------------------------------------------


def send_command(
    thing: Thing,
    name: str,
    args: dict[str, Any] | None = None,
    *,
    user: User | None = None,
    via: str = Via.DASHBOARD,
) -> Command:
    """Send command ``name`` to ``thing``; the ``Command`` records what happened.

    ``refused`` (with a ``reason``; nothing is published) when the device is
    offline, ``name`` is not one of ``thing.commands`` (when that list is not
    empty) or ``args`` is not a small JSON object; ``failed`` when the MQTT
    server's channel cannot take it; else ``pending`` until the device acks or
    ``IOT_COMMAND_TIMEOUT`` passes. Every outcome is announced on ``iot.commands``.
    """
    if via not in Via.values:
        raise ValueError(f"via must be one of {', '.join(Via.values)}, not {via!r}")
    args = {} if args is None else args
    reason = refusal(thing, name, args, iot_settings().max_payload_bytes)
    command = Command(
        thing=thing,
        name=name[:NAME_MAX_LENGTH],
        args=args if is_json_object(args) else {},
        requested_by=user if user is not None and user.is_authenticated else None,
        via=via,
        created_at=timezone.now(),
    )
    if reason is not None:
        command.status, command.reason = CommandStatus.REFUSED, reason
        command.save()
    else:
        command.save()
        _publish(command)
    _announce(command_event(command_info(command)), COMMANDS_GROUP, device_group(thing.device_id))
    return command


def _publish(command: Command) -> None:
    """Hand ``command`` to the MQTT server; mark it failed if that is impossible."""
    layer = get_channel_layer()
    try:
        if layer is None:
            raise ChannelLayerUnavailable("no channel layer is configured (CHANNEL_LAYERS)")
        async_to_sync(layer.send)(PUBLISH_CHANNEL, dict(publish_message(command)))
    except (ChannelFull, ChannelLayerUnavailable) as exc:
        command.status = CommandStatus.FAILED
        command.reason = (
            f"could not hand the command to the MQTT server: {exc or type(exc).__name__}"
        )
        command.save(update_fields=["status", "reason"])
        return
    async_to_sync(_report_out)(command)


async def _report_out(command: Command) -> None:
    """The command in the traffic log, sent now: this process may have no loop running."""
    device_id = command.thing.device_id
    traffic.emit("mqtt", "out", command_topic(device_id), command_payload(command), device_id)
    await traffic.drain()


def expire_overdue_commands(now: datetime | None = None) -> list[Command]:
    """Time out commands pending longer than ``IOT_COMMAND_TIMEOUT``, and announce them.

    The ingest side runs this every second; a process without MQTT consumers
    may call it before listing commands.
    """
    expired = expire_overdue(now or timezone.now(), iot_settings().command_timeout)
    for command in expired:
        info = command_info(command)
        _announce(command_event(info), COMMANDS_GROUP, device_group(info["device_id"]))
    return expired


# -- thresholds and alerts ------------------------------------------------------------


def clear_threshold_alerts(threshold: Threshold) -> None:
    """Clear the threshold's open alert, announced with no clear value: the threshold is
    being removed or disabled, so nothing would ever clear it."""
    thing = threshold.thing
    for alert in clear_alerts_of(threshold.pk, timezone.now()):
        event = alert_event(alert_info(alert, thing, "cleared"))
        _announce(event, ALERTS_GROUP, device_group(thing.device_id))


def set_threshold(
    thing: Thing,
    metric: str,
    direction: str,
    limit: float,
    *,
    hysteresis: float = 0.0,
    enabled: bool = True,
) -> Threshold:
    """Create or change ``thing``'s threshold on ``metric`` in ``direction``.

    ``ValidationError`` for a bad metric name, direction or number. Disabling a
    threshold clears its open alert (announced with no clear value); a changed
    limit applies to the device's next reading (within seconds: the ingest side
    reloads thresholds every few seconds).
    """
    errors: dict[str, str] = {}
    if not NAME.match(metric):
        errors["metric"] = "1-64 letters, digits, '_', '-' or '.'"
    try:
        as_direction(direction)
    except ValueError as exc:
        errors["direction"] = str(exc)
    if not math.isfinite(limit):
        errors["limit"] = "a finite number"
    if not math.isfinite(hysteresis) or hysteresis < 0:
        errors["hysteresis"] = "a finite number, 0 or more"
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        threshold, _ = Threshold.objects.update_or_create(
            thing=thing,
            metric=metric,
            direction=direction,
            defaults={"limit": limit, "hysteresis": hysteresis, "enabled": enabled},
        )
    if not enabled:
        clear_threshold_alerts(threshold)
    return threshold


def delete_threshold(thing: Thing, metric: str, direction: str) -> bool:
    """Delete the threshold, clearing its open alert; whether there was one to delete."""
    threshold = Threshold.objects.filter(thing=thing, metric=metric, direction=direction).first()
    if threshold is None:
        return False
    clear_threshold_alerts(threshold)
    threshold.delete()
    return True


def open_alerts(user: Viewer) -> QuerySet[Alert]:
    """The open alerts of the devices ``user`` may see, newest first."""
    return Alert.objects.filter(
        thing__in=visible_things(user), cleared_at__isnull=True
    ).select_related("thing")


def recent_readings(
    thing: Thing, since: datetime | None = None, *, limit: int = RECENT_POINTS
) -> list[list[Any]]:
    """Readings since ``since`` (default: the last hour), oldest first, at most the
    ``limit`` newest, as ``[[iso time, {metric: value}], ...]``: the ``points`` of
    ``iot.readings`` events, so a chart starts from this and appends those."""
    since = since or timezone.now() - RECENT
    newest = Reading.objects.filter(thing=thing, at__gte=since).order_by("-at")[:limit]
    return [[reading.at.isoformat(), reading.values] for reading in reversed(list(newest))]


# -- for async callers (consumers) -------------------------------------------------------


def _visible_list(user: Viewer) -> list[Thing]:
    return list(visible_things(user))


def _open_alert_list(user: Viewer) -> list[Alert]:
    return list(open_alerts(user))


athing_for = database_sync_to_async(thing_for)
avisible_things = database_sync_to_async(_visible_list)
asummaries = database_sync_to_async(summaries)
asend_command = database_sync_to_async(send_command)
aset_threshold = database_sync_to_async(set_threshold)
adelete_threshold = database_sync_to_async(delete_threshold)
aopen_alerts = database_sync_to_async(_open_alert_list)
arecent_readings = database_sync_to_async(recent_readings)
