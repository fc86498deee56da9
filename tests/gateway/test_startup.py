"""gateway.startup: the summary's parts, and the first admin (against the test database)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from gateway.startup import (
    Note,
    Summary,
    describe_database,
    describe_layer,
    first_admin,
    is_loopback,
    redact_url,
    summarize,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("rediss://app:s3cret@cache/1", "rediss://app@cache/1"),
        ("mqtt://user:pw@broker:1883?version=5", "mqtt://user@broker:1883?version=5"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_urls_lose_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_layers_are_described_without_passwords() -> None:
    assert describe_layer({"BACKEND": "gateway.layers.InMemoryChannelLayer"}) == (
        "in-memory (this process only)"
    )
    redis = {
        "BACKEND": "gateway.layers.redis.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://:pw@a:6379/0", {"address": "rediss://u:pw@b:6380"}]},
    }
    assert describe_layer(redis) == "RedisChannelLayer redis://a:6379/0, rediss://u@b:6380"


def test_databases_are_described_without_passwords() -> None:
    postgres = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "gateway",
        "USER": "app",
        "PASSWORD": "s3cret",
        "HOST": "db",
        "PORT": 5432,
    }
    assert describe_database(postgres) == "PostgreSQL app@db:5432/gateway"
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/var/db.sqlite3"}
    assert describe_database(sqlite) == "SQLite /srv/var/db.sqlite3"


class Web:
    """A service as the summary sees it: says where it serves and warns."""

    def describe(self, summary: Summary) -> None:
        summary.web_url = "http://127.0.0.1:8000"
        summary.add("MQTT devices", "mqtt://host:1883")
        summary.warn("risky")


@override_settings(ROOT_URLCONF="project.urls", DEBUG=True, ALLOWED_HOSTS=["*"])
def test_the_summary_lists_the_sites_pages_first_then_services_settings_and_warnings() -> None:
    summary = summarize("title", [Web()], site=True, admin=Note("none yet", warning=False))
    labels = [label for label, _ in summary.lines]
    assert labels == [
        "Dashboard",
        "Admin",
        "Metrics",
        "MQTT devices",
        "Channel layer",
        "Database",
        "First admin",
    ]
    assert summary.lines[:3] == [
        ("Dashboard", "http://127.0.0.1:8000/"),
        ("Admin", "http://127.0.0.1:8000/admin/"),
        ("Metrics", "http://127.0.0.1:8000/metrics"),
    ]
    assert summary.warnings[0] == "risky"
    assert any("DEBUG is on" in w for w in summary.warnings)
    assert any("ALLOWED_HOSTS contains '*'" in w for w in summary.warnings)
    text = summary.render().splitlines()
    assert text[0] == "title"
    assert text[1].split() == ["Dashboard", "http://127.0.0.1:8000/"]
    assert text[-1].startswith("  WARNING: ")


def test_a_process_not_serving_the_site_lists_no_pages() -> None:
    summary = summarize("title", [Web()], site=False)
    assert "Dashboard" not in [label for label, _ in summary.lines]


@pytest.mark.django_db(transaction=True)
def test_without_an_admin_the_note_says_how_to_create_one() -> None:
    get_user_model().objects.create_user("someone", password="pw")  # not an admin
    note = first_admin(create=False)
    assert note is not None
    assert not note.warning
    assert "manage.py createsuperuser" in note.text
    assert "--demo-admin" in note.text


@pytest.mark.django_db(transaction=True)
def test_demo_admin_is_created_once_with_a_password_that_works() -> None:
    users = get_user_model().objects
    users.create_user("admin", password="pw")  # the name is taken: another is chosen
    note = first_admin(create=True)
    assert note is not None
    username, password = note.text.split("'")[1], note.text.split("password ")[1].split()[0]
    admin = users.get(username=username)
    assert admin.is_superuser
    assert username != "admin"
    assert admin.check_password(password)
    assert password not in admin.password  # only its hash is stored
    assert first_admin(create=True) is None  # an admin exists now
    assert users.filter(is_superuser=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_unmigrated_database_is_a_warning_naming_migrate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE auth_user RENAME TO auth_user_away")
    try:
        note = first_admin(create=False)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE auth_user_away RENAME TO auth_user")
    assert note is not None
    assert note.warning
    assert "manage.py migrate" in note.text
