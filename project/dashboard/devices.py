"""A device's page (``/devices/<device_id>/``) and its credentials reset.

A device the user may not see is a 404, exactly as one that does not exist
(``services.thing_for``). The page is a frame; its live state (chart, alerts,
thresholds, commands) comes from ``/ws/devices/<device_id>/``
(project.dashboard.device_socket), which also takes its commands and thresholds.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from project.dashboard.credentials import broker_address, show_secret
from project.iot.models import Thing
from project.iot.services import reset_credentials, thing_for


def visible_thing(request: HttpRequest, device_id: str) -> Thing:
    try:
        return thing_for(request.user, device_id)
    except Thing.DoesNotExist:
        raise Http404("no such device") from None


@login_required
def device(request: HttpRequest, device_id: str) -> HttpResponse:
    thing = visible_thing(request, device_id)
    host, port = broker_address(request)
    context = {"thing": thing, "broker": f"{host}:{port}", "page": "fleet"}
    return render(request, "dashboard/device.html", context)


@login_required
@require_POST
def reset(request: HttpRequest, device_id: str) -> HttpResponse:
    """A new secret (the old one stops working at the device's next connect), shown once."""
    thing = visible_thing(request, device_id)
    return show_secret(request, thing, reset_credentials(thing), new=False)
