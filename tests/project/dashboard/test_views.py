"""The dashboard's pages and /metrics: who gets in, and what they see."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from project.dashboard.urls import urlpatterns
from tests.project.dashboard.conftest import PASSWORD, logged_in

pytestmark = pytest.mark.django_db

PAGES = ["/", "/traffic/", "/health/"]
#: Every dashboard URL, a sample value in each path parameter.
EVERY_PAGE = [
    "/" + re.sub(r"<[^>]+>", "sample", re.sub(r"<int:[^>]+>", "1", str(url.pattern)))
    for url in urlpatterns
]


@pytest.mark.parametrize("page", EVERY_PAGE)
def test_every_page_sends_anonymous_visitors_to_the_login_page(page: str) -> None:
    assert set(PAGES) <= set(EVERY_PAGE)
    for method in (Client().get, Client().post):
        response = method(page)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={quote(page)}"


def test_the_login_page_logs_in_and_leads_to_the_fleet(staff: Any) -> None:
    client = Client()
    page = client.get("/accounts/login/?next=/health/")
    assert page.status_code == 200
    assert b"dashboard/dashboard.css" in page.content
    assert b'name="next" value="/health/"' in page.content
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200
    assert b'class="notice error"' in wrong.content
    right = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert right.status_code == 302
    assert right["Location"] == "/"
    fleet = client.get("/")
    assert fleet.status_code == 200
    assert b'action="/accounts/logout/"' in fleet.content


def test_logging_out_takes_a_post(staff: Any) -> None:
    client = logged_in(staff)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/health/").status_code == 302


def test_staff_see_every_page_and_the_admin_in_the_nav(staff: Any) -> None:
    client = logged_in(staff)
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
        assert b'href="/traffic/"' in response.content
        assert b'href="/admin/"' in response.content
        assert b'action="/accounts/logout/"' in response.content


def test_the_traffic_log_is_for_staff_only(member: Any) -> None:
    client = logged_in(member)
    assert client.get("/traffic/").status_code == 403
    health = client.get("/health/")
    assert health.status_code == 200
    assert b'href="/traffic/"' not in health.content
    assert b'href="/admin/"' not in health.content


def test_the_admin_is_branded_and_its_view_site_link_leads_to_the_dashboard(staff: Any) -> None:
    staff.is_superuser = True
    staff.save()
    page = logged_in(staff).get("/admin/")
    assert b"Gateway administration" in page.content
    assert b'<a href="/">View site</a>' in page.content


def scrape(response: Any) -> dict[str, float]:
    families = text_string_to_metric_families(response.content.decode())
    return {sample.name: sample.value for family in families for sample in family.samples}


def test_metrics_refuse_anonymous_and_non_staff_callers(member: Any) -> None:
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert logged_in(member).get("/metrics").status_code == 403


def test_metrics_for_a_staff_session_in_the_prometheus_format(staff: Any) -> None:
    response = logged_in(staff).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = scrape(response)
    assert samples["gateway_info"] == 1
    assert samples["gateway_uptime_seconds"] > 0


def test_metrics_with_the_bearer_token(settings: Any) -> None:
    settings.METRICS_TOKEN = "t0ken-for-prometheus"
    client = Client()
    allowed = client.get("/metrics", headers={"Authorization": "Bearer t0ken-for-prometheus"})
    assert allowed.status_code == 200
    assert "gateway_info" in scrape(allowed)
    wrong = client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics", error="invalid_token"'


def test_without_a_token_configured_no_bearer_gets_in(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.METRICS_TOKEN = None
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    response = Client().get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
