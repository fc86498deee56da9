"""The dashboard as a person meets it: a real ``gateway run`` and a headless Chromium.

The appliance starts on a fresh database with ``--demo-admin``; the browser opens
the health page, is sent to the login page, logs in with the printed password, and
lands on the health page, whose numbers come live over its WebSocket: its own
socket is the one open WebSocket, and a second tab (the traffic page) shows up in
the count with the next heartbeat. On a phone-sized screen nothing overflows
sideways. Playwright's sync API drives Debian's ``chromium`` from a worker thread,
so this test's event loop keeps reading the server's output meanwhile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.example.test_browser import CHROMIUM, CHROMIUM_ARGS, LAUNCH_MS, WAIT_MS
from tests.ports import free_port
from tests.project.processes import demo_admin, gateway, gateway_env, migrate


def browse(base: str, username: str, password: str) -> None:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_MS
        )
        try:
            context = chromium.new_context(base_url=base)
            context.set_default_timeout(WAIT_MS)
            health = context.new_page()
            health.goto("/health/")
            expect(health).to_have_url(f"{base}/accounts/login/?next=/health/")
            health.fill("#id_username", username)
            health.fill("#id_password", password)
            health.click("button[type=submit]")
            expect(health).to_have_url(f"{base}/health/")
            expect(health.locator("#live-status")).to_have_text("live")
            expect(health.locator("#total-processes")).to_have_text("1")
            expect(health.locator('[data-cell="websocket-open"]')).to_have_text("1")

            traffic = context.new_page()
            traffic.goto("/traffic/")
            expect(traffic.locator("#live-status")).to_have_text("live")
            # The next heartbeat (every 2 s) counts the traffic page's socket too.
            expect(health.locator('[data-cell="websocket-open"]')).to_have_text("2")
            # ... and the traffic log shows the health page's socket connecting.
            expect(traffic.locator("#entries")).to_contain_text("connect")

            phone = chromium.new_context(base_url=base, viewport={"width": 390, "height": 844})
            phone.set_default_timeout(WAIT_MS)
            small = phone.new_page()
            small.goto("/accounts/login/")
            assert small.evaluate("document.documentElement.scrollWidth <= innerWidth")
            small.fill("#id_username", username)
            small.fill("#id_password", password)
            small.click("button[type=submit]")
            small.goto("/health/")
            expect(small.locator("#live-status")).to_have_text("live")
            assert small.evaluate("document.documentElement.scrollWidth <= innerWidth")
        finally:
            chromium.close()


async def test_log_in_and_watch_the_health_page_live(tmp_path: Path) -> None:
    env = gateway_env(tmp_path)
    await migrate(env)
    web = free_port()
    options = ["--port", str(web), "--mqtt-port", str(free_port()), "--demo-admin"]
    async with gateway(env, "run", *options) as process:
        username, password = await demo_admin(process)
        await asyncio.to_thread(browse, f"http://127.0.0.1:{web}", username, password)
        assert await process.stop() == 0
    assert "Traceback" not in process.text, process.text
