"""The fleet page (``/``): every device the user may see, live, and adding one.

The page renders the same summaries the socket's snapshot sends
(``services.summaries``), so it is complete before the socket opens; fleet.js
then keeps it up to date from ``/ws/fleet/`` (project.dashboard.fleet_socket).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from project.dashboard.credentials import show_secret
from project.dashboard.forms import AddDeviceForm
from project.dashboard.users import signed_in
from project.iot.services import create_thing, summaries


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    return _page(request, AddDeviceForm())


@login_required
@require_POST
def add_device(request: HttpRequest) -> HttpResponse:
    """Create the device for the user and show its secret once; errors: the page again."""
    form = AddDeviceForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    thing, secret = create_thing(
        signed_in(request),
        data["device_id"],
        data["name"],
        commands=data["commands"],
    )
    return show_secret(request, thing, secret, new=True)


def _page(request: HttpRequest, form: AddDeviceForm, status: int = 200) -> HttpResponse:
    context = {"devices": summaries(request.user), "form": form, "page": "fleet"}
    return render(request, "dashboard/fleet.html", context, status=status)
