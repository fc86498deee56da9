"""Production code never imports the test tools (DESIGN.md §2, issue 14).

``gateway.testing`` is what tests import; what users run (the local Bot API server
behind ``gateway telegram --local-api`` is ``gateway.botapi``) lives outside it. The
source is read with :mod:`ast`, so an import in a function body, a relative import
(``from ..testing import``), ``from gateway import testing`` and
``importlib.import_module("gateway.testing...")`` all count. Only ``gateway/testing``
itself and ``tests/`` may import it; so may ``bench/``, which may import everything.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = "gateway.testing"
#: Trees that may import the test tools, relative to ROOT.
ALLOWED = (Path("gateway/testing"), Path("tests"), Path("bench"))


def module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Dotted names the ``source`` of ``module`` imports, relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = [node.module] if node.module else []
            if node.level:
                parts = package[: len(package) - node.level + 1] + parts
            base = ".".join(parts)
            yield base
            yield from (
                f"{base}.{alias.name}" for alias in node.names
            )  # from gateway import testing
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def imports_test_tools(source: str, module: str, is_package: bool = False) -> list[str]:
    return sorted(
        {
            name
            for name in imported_names(source, module, is_package)
            if name == FORBIDDEN or name.startswith(FORBIDDEN + ".")
        }
    )


def source_files() -> list[Path]:
    """Every Python file of the checkout outside hidden directories (.venv, .git)."""
    files = []
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        here = Path(directory).relative_to(ROOT)
        files += [here / name for name in names if name.endswith(".py")]
    return files


def test_nothing_outside_the_test_tools_and_tests_imports_them() -> None:
    checked = [
        path
        for path in source_files()
        if not any(path.is_relative_to(allowed) for allowed in ALLOWED)
    ]
    # The launcher behind --local-api is the import this rule was written for.
    assert Path("protocols/telegram/launcher.py") in checked
    offenders = {
        str(path): names
        for path in checked
        if (
            names := imports_test_tools(
                (ROOT / path).read_text(encoding="utf-8"),
                module_name(path),
                is_package=path.name == "__init__.py",
            )
        )
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import gateway.testing\n", "protocols.x", ["gateway.testing"]),
        (
            "from gateway.testing.http import HttpCommunicator\n",
            "protocols.x",
            ["gateway.testing.http", "gateway.testing.http.HttpCommunicator"],
        ),
        ("from gateway import testing\n", "project.x", ["gateway.testing"]),
        (
            "def f():\n    from gateway.testing import WebsocketCommunicator\n",
            "project.x",
            ["gateway.testing", "gateway.testing.WebsocketCommunicator"],
        ),
        (
            "import importlib\nimportlib.import_module('gateway.testing.mqtt')\n",
            "gateway.cli",
            ["gateway.testing.mqtt"],
        ),
        (
            "from ..testing import live\n",
            "gateway.generic.http",
            ["gateway.testing", "gateway.testing.live"],
        ),
        ("from . import testing\n", "gateway.cli", ["gateway.testing"]),
        ("from .testing import http\n", "gateway", ["gateway.testing", "gateway.testing.http"]),
        ("from gateway.botapi import BotAPIServer\n", "protocols.x", []),
        ("import gateway.testingx\n", "protocols.x", []),
    ],
)
def test_the_check_sees_every_form_of_import(source: str, module: str, expected: list[str]) -> None:
    """The walk above would pass vacuously if it missed a form of import."""
    is_package = module == "gateway"
    assert imports_test_tools(source, module, is_package) == expected
