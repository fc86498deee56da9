"""Every third-party package the shipped code imports at run time is a declared dependency.

An import satisfied only because some other dependency happens to pull the package
in works until that dependency changes; ``scripts/run`` installs exactly the
declared runtime dependencies, so a missing one breaks the appliance, not the tests.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("gateway", "protocols", "project")


def run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports there
    serve the type checker only, whose packages come with the test extra)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            for node in run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - set(SHIPPED) - {"__future__"}


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for spec in project["dependencies"]:
        match = re.match(r"([\w.-]+)(?:\[([\w.,-]+)\])?", spec)
        assert match is not None, spec
        names.add(match[1])
        # redis[hiredis]: the extra installs a distribution of that name.
        names.update((match[2] or "").split(",") if match[2] else ())
    return {normalise(name) for name in names}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_shipped_imports_are_declared_dependencies() -> None:
    providers = packages_distributions()
    declared = declared_distributions()
    undeclared = {
        module: providers.get(module, ["(not installed)"])
        for module in imported_top_level_modules()
        if not any(normalise(dist) in declared for dist in providers.get(module, []))
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
