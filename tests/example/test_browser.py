"""The example project as a person uses it: ``gateway web`` serving it to a real browser.

A headless Chromium (Debian's ``chromium``, driven by Playwright) logs in through
the Django admin's form, then two signed-in users chat on the room page, whose
JavaScript talks to the chat consumer over a WebSocket. The server is the
``gateway web`` command in a child process, on a listening socket the test
binds and hands over (``--fd``), so the port is known before the child starts
and is never raced for. The child uses the test database through
``GATEWAY_TEST_DATABASE_URL`` (hence ``transaction=True``: it must see the users).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/services installs it)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # every browser wait
#: Starting Chromium itself: seconds on a quiet machine, far more when two suites share it.
LAUNCH_MS = 60_000
PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]


def shared_database_url() -> str:
    """The URL of the database this test runs against, for the server process."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "the server process needs a shared database"
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"


@pytest.fixture
def staff() -> list[str]:
    """Two staff users (committed, so the server process sees them)."""
    names = ["alice", "bob"]
    for name in names:
        get_user_model().objects.create_user(name, password=PASSWORD, is_staff=True)
    return names


@pytest.fixture
def gateway_web() -> Iterator[str]:
    """``gateway web tests.example.asgi:application`` on a socket of 127.0.0.1; its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "GATEWAY_TEST_DATABASE_URL": shared_database_url(),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "gateway.cli", "web", "tests.example.asgi:application"]
    command += ["--fd", str(listener.fileno()), "--no-access-log"]
    with tempfile.TemporaryFile() as output:
        with listener:
            server = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                pass_fds=[listener.fileno()],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        # Only the child holds the socket now: if it dies, connecting fails at once.
        base = f"http://127.0.0.1:{port}"
        try:
            # Connections queue on the listening socket until the child serves them.
            response = httpx.get(f"{base}/admin/login/", timeout=15)
            assert response.status_code == 200
            yield base
        finally:
            server.send_signal(signal.SIGTERM)
            code: int | None
            try:
                code = server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
                code = None
            output.seek(0)
            log = output.read().decode(errors="replace")
            # Also reached when the server never answered: its log then says why.
            assert code == 0, f"gateway web exited with {code}:\n{log}"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(browser: Browser, base: str, username: str) -> Page:
    """A page in a browser profile of its own, logged in through the admin's login form."""
    context = browser.new_context(base_url=base)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{base}/admin/", timeout=WAIT_MS)
    expect(page.locator("h1")).to_have_text("Site administration", timeout=WAIT_MS)
    return page


def enter_room(page: Page, room: str) -> None:
    page.goto(f"/chat/{room}/")
    expect(page.locator("#chat-status")).to_have_text("connected", timeout=WAIT_MS)


def say(page: Page, message: str) -> None:
    page.fill("#chat-message-input", message)
    page.press("#chat-message-input", "Enter")


def test_admin_login_then_chat_in_the_browser(
    staff: list[str], gateway_web: str, browser: Browser, unique: str
) -> None:
    # Two browser profiles (separate cookie jars): alice and bob, each logged in.
    alices_tab, bobs_tab = (log_in(browser, gateway_web, name) for name in staff)
    enter_room(alices_tab, unique)
    enter_room(bobs_tab, unique)

    say(alices_tab, "hello bob")
    for tab in (alices_tab, bobs_tab):
        expect(tab.locator("#chat-log")).to_have_value("alice: hello bob\n", timeout=WAIT_MS)
    say(bobs_tab, "hi alice")
    for tab in (alices_tab, bobs_tab):
        expect(tab.locator("#chat-log")).to_have_value(
            "alice: hello bob\nbob: hi alice\n", timeout=WAIT_MS
        )


def test_anonymous_visitors_cannot_join_the_chat(gateway_web: str, browser: Browser) -> None:
    """The page loads for anyone, but the consumer refuses a socket without a session."""
    page = browser.new_page(base_url=gateway_web)
    page.set_default_timeout(WAIT_MS)
    page.goto("/chat/lobby/")
    expect(page.locator("#chat-status")).to_have_text("disconnected (1006)", timeout=WAIT_MS)
