"""``manage.py runserver`` serves ASGI_APPLICATION (HTTP, WebSocket, static files)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[3]


ENV = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.protocols.websocket.runserver_settings")


@pytest.fixture
def runserver() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-u", "manage.py", "runserver", "127.0.0.1:0", "--noreload"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            found = re.search(
                r"Starting ASGI/gateway development server at http://127\.0\.0\.1:(\d+)/", line
            )
            if found:
                break
        else:
            pytest.fail("runserver did not start:\n" + "".join(output))
        yield int(found.group(1))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_runserver_serves_http_websocket_and_static_files(runserver: int) -> None:
    base = f"http://127.0.0.1:{runserver}"
    with httpx.Client(timeout=5) as client:
        assert client.get(base + "/anything").text == "served by gateway"
        static = client.get(base + "/static/admin/css/base.css")
        assert static.status_code == 200
        assert "text/css" in static.headers["content-type"]
    with connect(f"ws://127.0.0.1:{runserver}/ws", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo:hi"


def test_a_taken_port_is_one_line_and_exit_status_1() -> None:
    """As Django's runserver: the bind error in its words, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == "Error: That port is already in use."
    assert "Traceback" not in finished.stderr
