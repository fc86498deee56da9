"""The dashboard's pages, and ``/metrics`` for machines.

Every page needs a logged-in user; the traffic log needs staff, because it shows
every device's and every chat's messages. ``/metrics`` answers a staff session,
or a request with ``Authorization: Bearer <METRICS_TOKEN>`` when that setting (or
environment variable) is set, for a Prometheus server, which has no session;
nobody else.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.conf import setting
from gateway.metrics import registry

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Anonymous: to the login page; logged in but not staff: 403."""

    @login_required
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return checked


@staff_required
def traffic(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/traffic.html", {"page": "traffic"})


@login_required
def health(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/health.html", {"page": "health"})


async def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format of :data:`gateway.metrics.registry`.

    Async on purpose: it runs on the event loop that owns the counters, so the
    registry's readers never race the servers they read.
    """
    token = setting("METRICS_TOKEN")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if not (token and constant_time_compare(presented.strip(), token)):
            return _challenge("invalid_token")
    else:
        user = await request.auser()
        if not user.is_authenticated:
            return _challenge(None)
        if not (user.is_active and user.is_staff):
            return HttpResponse("staff only\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry.prometheus), content_type=CONTENT_TYPE_LATEST)


def _challenge(error: str | None) -> HttpResponse:
    """401 with the Bearer challenge of RFC 6750 §3."""
    response = HttpResponse("log in as staff, or send Authorization: Bearer <METRICS_TOKEN>\n")
    response.status_code = 401
    response["Content-Type"] = "text/plain"
    response["WWW-Authenticate"] = 'Bearer realm="metrics"' + (
        f', error="{error}"' if error else ""
    )
    return response
