"""What a person sees once a gateway process has started.

Every start ends with one short summary a person can act on: the pages to open,
where devices connect, which channel layer, database and broker are in use, and a
``WARNING`` line for each risky setting. Each service describes itself
(:class:`Describes`); this module adds what belongs to the process (settings, the
first admin) and renders it. No secret is ever shown: URLs lose their password,
tokens are never read here.

The first admin: a fresh database has no user who can log in to the dashboard.
:func:`first_admin` says how to create one, or (``--demo-admin``) creates one with
a random password that is printed once, in the summary, and never stored in clear.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections
from django.urls import NoReverseMatch, reverse

#: The pages listed when the process serves the project over HTTP: label, URL name
#: (resolved with ``reverse``; a name the project does not define is left out).
SITE_PAGES = (("Admin", "admin:index"), ("Metrics", "metrics"))


@dataclass
class Summary:
    """The summary of one process: labelled lines, then warnings."""

    title: str
    #: Where the process serves the project's web pages, once the web server said so.
    web_url: str | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append((label, text))

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def render(self) -> str:
        width = max((len(label) for label, _ in self.lines), default=0) + 2
        out = [self.title]
        out += [f"  {label.ljust(width)}{text}" for label, text in self.lines]
        out += [f"  WARNING: {text}" for text in self.warnings]
        return "\n".join(out)


class Note(NamedTuple):
    """A line about the process that is not any service's."""

    text: str
    warning: bool


class Describes(Protocol):
    """A service that can say what it serves (``protocols.service.Service`` does)."""

    def describe(self, summary: Summary) -> None: ...


def summarize(
    title: str, services: Iterable[Describes], *, site: bool, admin: Note | None = None
) -> Summary:
    """The summary of a process running ``services``.

    ``site``: list the project's pages first (the process serves the dashboard);
    ``admin``: what :func:`first_admin` found.
    """
    summary = Summary(title)
    for service in services:
        service.describe(summary)
    if site and summary.web_url is not None:
        summary.lines[:0] = site_pages(summary.web_url)
    add_settings(summary)
    if admin is not None and admin.warning:
        summary.warn(admin.text)
    elif admin is not None:
        summary.add("First admin", admin.text)
    return summary


def site_pages(base_url: str) -> list[tuple[str, str]]:
    """The dashboard (the site's root) and every :data:`SITE_PAGES` entry the project has."""
    pages = [("Dashboard", f"{base_url}/")]
    if getattr(settings, "ROOT_URLCONF", None):
        for label, name in SITE_PAGES:
            try:
                pages.append((label, base_url + reverse(name)))
            except NoReverseMatch:
                continue
    return pages


def add_settings(summary: Summary) -> None:
    """Channel layer and database in use; warnings for risky Django settings."""
    layers: Mapping[str, Any] = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if "default" in layers:
        summary.add("Channel layer", describe_layer(layers["default"]))
    if has_database():
        summary.add("Database", describe_database(connections["default"].settings_dict))
    if settings.DEBUG:
        summary.warn(
            "DEBUG is on: error pages show code and settings to anyone (never in production)"
        )
    if "*" in settings.ALLOWED_HOSTS:
        summary.warn(
            "ALLOWED_HOSTS contains '*': any Host is served and WebSocket origin checks "
            "accept every site"
        )


def has_database() -> bool:
    """Whether the project configures a database (Django's stand-in is the dummy backend)."""
    engine = connections["default"].settings_dict.get("ENGINE", "")
    return bool(engine) and not engine.endswith(".dummy")


def describe_layer(config: Mapping[str, Any]) -> str:
    """A ``CHANNEL_LAYERS`` entry in a few words, without passwords."""
    backend = str(config.get("BACKEND", "?"))
    if backend.endswith("InMemoryChannelLayer"):
        return "in-memory (this process only)"
    hosts = (config.get("CONFIG") or {}).get("hosts") or []
    addresses = [redact_url(_host_address(host)) for host in hosts]
    return f"{backend.rsplit('.', 1)[-1]} {', '.join(addresses) or '(default host)'}"


def _host_address(host: Any) -> str:
    if isinstance(host, str):
        return host
    if isinstance(host, Mapping):
        return str(host.get("address") or f"{host.get('host', '?')}:{host.get('port', '?')}")
    if isinstance(host, list | tuple) and len(host) == 2:
        return f"{host[0]}:{host[1]}"
    return type(host).__name__


def describe_database(config: Mapping[str, Any]) -> str:
    """A ``DATABASES`` entry in a few words: engine, and file or host and name."""
    engine = str(config.get("ENGINE", ""))
    name = config.get("NAME") or ""
    if engine.endswith("sqlite3"):
        return f"SQLite {name}"
    kind = engine.rsplit(".", 1)[-1]
    kind = {"postgresql": "PostgreSQL", "mysql": "MySQL", "oracle": "Oracle"}.get(kind, kind)
    host = config.get("HOST") or "localhost"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    user = f"{config['USER']}@" if config.get("USER") else ""
    return f"{kind} {user}{host}{port}/{name}"


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://:secret@host`` -> ``redis://host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}{parts.hostname}{port}"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def all_interfaces(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def manage_command() -> str:
    """How to run ``manage.py`` here, as a person would type it."""
    python = sys.executable
    try:
        relative = Path(python).relative_to(Path.cwd())
    except ValueError:
        pass
    else:
        python = str(relative)
    if Path("manage.py").exists():
        return f"{python} manage.py"
    return f"DJANGO_SETTINGS_MODULE={os.environ.get('DJANGO_SETTINGS_MODULE')} {python} -m django"


def first_admin(create: bool) -> Note | None:
    """How the first admin comes to be, or None when there is one (or no users at all).

    With ``create``,
    and no superuser yet, a superuser is created with a random password, which the
    note shows (this once: only its hash is stored). Runs synchronously, before the
    event loop starts, and closes the connections it opened.
    """
    if not apps.is_installed("django.contrib.auth") or not has_database():
        return None
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager
    command = manage_command()
    try:
        if users.filter(is_superuser=True).exists():
            return None
        if not create:
            return Note(
                f"none yet: create one with `{command} createsuperuser` "
                "(or start once with --demo-admin)",
                warning=False,
            )
        username = "admin"
        while users.filter(username=username).exists():
            username = f"admin-{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        return Note(
            f"created user {username!r} with password {password} "
            "(shown this once: change it in the admin)",
            warning=False,
        )
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Note(f"the database is not ready ({reason}): run `{command} migrate`", warning=True)
    finally:
        connections.close_all()
