"""``gateway web`` as users run it: a subprocess, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[3]


def test_gateway_web_serves_and_shuts_down_gracefully_on_sigterm() -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.protocols.websocket.runserver_settings")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "web",
            "tests.protocols.websocket.runserver_app:application",
            "--port=0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        output = []
        for line in process.stdout:
            output.append(line)
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                break
        else:
            raise AssertionError("gateway web did not start:\n" + "".join(output))
        port = int(found.group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "served by gateway"
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        assert process.wait(timeout=10) == 0
        rest = process.stdout.read()
        assert "Traceback" not in rest
        assert "aborting" not in rest  # a well-behaved app shuts down without noise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
