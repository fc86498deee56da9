"""The ``gateway`` command line, run as users run it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import LAUNCHERS

ROOT = Path(__file__).resolve().parent.parent


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
        "export it (e.g. project.settings)"
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
