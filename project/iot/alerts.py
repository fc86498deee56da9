"""Opening and clearing alerts in the database (sync ORM code; run it in a thread).

The database decides what happened, not a process's memory: at most one alert
per threshold can be open (a partial unique constraint), and clearing is a
conditional UPDATE, so when several processes evaluate the same device each
opening and each clearing is recorded, and therefore announced, exactly once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from project.iot.hysteresis import Rule
from project.iot.models import Alert


def open_alert(
    thing_pk: int, threshold_id: int, rule: Rule, value: float, at: datetime
) -> tuple[Alert, bool] | None:
    """The threshold's open alert and whether this call opened it.

    None when the threshold no longer exists (deleted since it was loaded).
    """
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                thing_id=thing_pk,
                threshold_id=threshold_id,
                metric=rule.metric,
                direction=rule.direction,
                limit=rule.limit,
                value=value,
                opened_at=at,
            )
    except IntegrityError:  # already open (another process), or the threshold is gone
        existing = Alert.objects.filter(threshold_id=threshold_id, cleared_at__isnull=True).first()
        return None if existing is None else (existing, False)
    return alert, True


def clear_alert(alert_id: int, value: float | None, at: datetime) -> Alert | None:
    """Clear an open alert; the alert if this call cleared it, else None."""
    if not Alert.objects.filter(pk=alert_id, cleared_at__isnull=True).update(
        cleared_at=at, clear_value=value
    ):
        return None
    return Alert.objects.get(pk=alert_id)


def clear_alerts_of(threshold_id: int, at: datetime) -> list[Alert]:
    """Clear the threshold's open alert (it is being removed or disabled): no clear value."""
    open_ids = Alert.objects.filter(threshold_id=threshold_id, cleared_at__isnull=True)
    cleared = (clear_alert(pk, None, at) for pk in open_ids.values_list("pk", flat=True))
    return [alert for alert in cleared if alert is not None]
