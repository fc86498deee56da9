"""The ``gateway`` command line, run as users run it: a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.botapi import BotAPIServer
from gateway.cli import build_parser, build_services
from gateway.routing import ProtocolTypeRouter
from gateway.types import Receive, Scope, Send
from protocols.launch import LAUNCHERS
from tests.protocols.telegram.test_seed import ChattyBotConsumer

ROOT = Path(__file__).resolve().parents[2]


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_every_server() -> None:
    result = gateway("--help")
    assert result.returncode == 0, result.stderr
    for name in ["run", *LAUNCHERS]:
        assert name in result.stdout


@pytest.mark.parametrize("command", ["run", *LAUNCHERS])
def test_every_subcommand_has_help(command: str) -> None:
    result = gateway(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: gateway" in result.stdout


def test_missing_settings_is_one_clear_line() -> None:
    result = gateway("run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gateway: configuration error: DJANGO_SETTINGS_MODULE is not set: "
        "export it (e.g. project.settings) or name the APP"
    ]


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("tests.asgi", "APP must look like module:attribute, not 'tests.asgi'"),
        ("tests.nonexistent:application", "cannot import 'tests.nonexistent'"),
        ("tests.asgi:nothing", "tests.asgi has no 'nothing'"),
    ],
)
def test_bad_app_is_one_clear_line(app: str, message: str) -> None:
    result = gateway("run", app, env={"DJANGO_SETTINGS_MODULE": "tests.settings"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


async def project_http(scope: Scope, receive: Receive, send: Send) -> None:
    """The project's own HTTP: one plain-text page."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"project page"})


WEB_AND_BOT = ProtocolTypeRouter({"http": project_http, "telegram": ChattyBotConsumer.as_asgi()})


async def test_run_serves_telegram_webhooks_on_the_web_servers_port(settings: object) -> None:
    async with BotAPIServer() as api:
        token = api.add_bot("hook_bot")
        settings.TELEGRAM_BOT_TOKEN = token  # type: ignore[attr-defined]
        settings.TELEGRAM_API_URL = api.base_url  # type: ignore[attr-defined]
        listening = socket.create_server(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        args = build_parser().parse_args(
            [
                "run",
                f"{__name__}:WEB_AND_BOT",
                f"--fd={listening.detach()}",  # the web server owns the socket from here
                "--no-access-log",
                "--telegram-transport=webhook",
                f"--webhook-url=http://127.0.0.1:{port}/telegram/webhook",
            ]
        )
        services = build_services(args)
        assert [service.name for service in services] == ["web", "telegram"]
        stop = asyncio.Event()
        running = asyncio.create_task(services.serve(2, stop))
        try:
            api.user_message(token, "over the web port", chat_id=5)
            (reply,) = await api.wait_sent(token, 5)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                page = await client.get("/telegram/webhooks-are-elsewhere")
                forged = await client.post(
                    f"/telegram/webhook/{token.split(':')[0]}", json={"update_id": 1}
                )
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await running
    assert reply["text"] == "You said: over the web port"
    (webhook,) = api.calls(token, "setWebhook")
    assert webhook["url"] == f"http://127.0.0.1:{port}/telegram/webhook/{token.split(':')[0]}"
    assert (page.status_code, page.text) == (200, "project page")
    assert forged.status_code == 403  # no X-Telegram-Bot-Api-Secret-Token


def test_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gateway(
            "web", "tests.asgi:application", "--port", str(port),
            env={"DJANGO_SETTINGS_MODULE": "tests.settings"},
        )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if not line[:4].isdigit()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("gateway: cannot start web: ")
    assert "address already in use" in errors[0].lower()


def start_web(
    *args: str,
    env: dict[str, str] | None = None,
    app: str = "tests.protocols.websocket.runserver_app:application",
    cwd: Path = ROOT,
) -> tuple[subprocess.Popen[str], str]:
    """``gateway web APP`` on a free port: the process and its output up to "listening".

    ``env`` None: the settings of ``app``; else exactly the environment plus ``env``.
    """
    environ = dict(os.environ)
    if env is None:
        environ["DJANGO_SETTINGS_MODULE"] = "tests.protocols.websocket.runserver_settings"
    else:
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        environ.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "web", app, "--port=0", *args],
        cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "listening on http://" in line:
            break
    return process, "".join(output)


def stop_web(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def root_page(output: str) -> str:
    """The text of ``/`` on the web server whose start ``output`` names."""
    found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", output)
    assert found, output
    return httpx.get(f"http://127.0.0.1:{found.group(1)}/", timeout=5).text


@pytest.mark.parametrize(
    ("option", "loop_class"),
    [
        ((), "uvloop.Loop"),  # auto: uvloop is a dependency, so it is installed here
        (("--loop", "uvloop"), "uvloop.Loop"),
        (("--loop", "asyncio"), "asyncio."),
    ],
)
def test_web_serves_on_the_chosen_event_loop(option: tuple[str, ...], loop_class: str) -> None:
    process, output = start_web(*option)
    try:
        assert root_page(output) == "served by gateway"
    finally:
        assert stop_web(process) == 0
    assert f"event loop: {loop_class}" in output


def test_loop_uvloop_without_uvloop_is_one_clear_line(tmp_path: Path) -> None:
    blocked = tmp_path / "uvloop"
    blocked.mkdir()
    (blocked / "__init__.py").write_text("raise ImportError('uvloop is blocked in this test')\n")
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    environ = {"DJANGO_SETTINGS_MODULE": "tests.protocols.websocket.runserver_settings",
               "PYTHONPATH": pythonpath}  # fmt: skip
    result = gateway("web", "tests.protocols.websocket.runserver_app:application",
                     "--port=0", "--loop", "uvloop", env=environ)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "gateway: configuration error: --loop uvloop: uvloop is not installed "
        "(uvloop is blocked in this test)"
    )
    process, output = start_web("--loop", "auto", env=environ)  # auto falls back
    assert stop_web(process) == 0
    assert "listening on http://" in output
    assert "event loop: asyncio." in output


def test_version() -> None:
    result = gateway("--version")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"gateway \d+\.\d+\.\d+\S*\n", result.stdout)


def test_options_work_after_the_subcommand_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_LOG_LEVEL", raising=False)
    parser = build_parser()
    assert parser.parse_args(["run", "--log-level", "debug"]).log_level == "debug"
    assert parser.parse_args(["--log-level", "warning", "web"]).log_level == "warning"
    assert parser.parse_args(["worker", "--log-level", "error", "x"]).log_level == "error"
    assert parser.parse_args(["mqtt"]).log_level == "info"
    assert parser.parse_args(["run", "--shutdown-timeout", "3"]).shutdown_timeout == 3.0
    assert parser.parse_args(["web"]).shutdown_timeout == 10.0


def test_the_shutdown_timeout_is_the_bound_announced_at_stop() -> None:
    process, _ = start_web("--shutdown-timeout", "2.5")
    try:
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        rest = process.stdout.read()  # to the end: the process exits
    finally:
        assert stop_web(process) == 0
    assert "shutting down (at most 2.5s)" in rest


SITE = {
    "mysite/__init__.py": "",
    "mysite/settings.py": (
        "SECRET_KEY = 'only-for-this-test'\n"
        "ALLOWED_HOSTS = ['127.0.0.1']\n"
        "ROOT_URLCONF = 'mysite.urls'\n"
        "INSTALLED_APPS = []\n"
    ),
    "mysite/urls.py": (
        "from django.http import HttpResponse\n"
        "from django.urls import path\n"
        "urlpatterns = [path('', lambda request: HttpResponse('hello from mysite'))]\n"
    ),
    # A stock Django asgi.py: the settings come from the module itself.
    "mysite/asgi.py": (
        "import os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
        "from django.core.asgi import get_asgi_application\n"
        "application = get_asgi_application()\n"
    ),
}


@pytest.mark.parametrize("where", ["project directory", "--app-dir"])
def test_web_serves_a_project_as_daphne_and_uvicorn_do(tmp_path: Path, where: str) -> None:
    """``gateway web mysite.asgi:application``, no DJANGO_SETTINGS_MODULE exported."""
    for name, text in SITE.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    options: tuple[str, ...]
    if where == "--app-dir":
        options, cwd = ("--app-dir", str(tmp_path)), ROOT
    else:
        options, cwd = (), tmp_path
    process, output = start_web(*options, env={}, app="mysite.asgi:application", cwd=cwd)
    try:
        assert root_page(output) == "hello from mysite"
    finally:
        assert stop_web(process) == 0
