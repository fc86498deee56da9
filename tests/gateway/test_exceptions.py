"""gateway.exceptions draws the exception tree as it is: every exception class the
packages define is drawn there with its real base, or named as one that never
reaches an application."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import re

import gateway
import gateway.exceptions
import protocols

#: A tree line: its indentation (the depth) and the class name it starts with.
TREE_LINE = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[\w.]+)")


def drawn_tree() -> dict[str, str]:
    """Class name -> the name of the parent it is drawn under."""
    doc = gateway.exceptions.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: list[str] = []
    drawn: dict[str, str] = {}
    for line in block.splitlines():
        match = TREE_LINE.match(line.removeprefix("    "))
        assert match is not None, line
        depth = len(match["indent"]) // 4 + (1 if "──" in line else 0)
        name = match["name"].rsplit(".", 1)[-1]
        del parents[depth:]
        if parents:
            drawn[name] = parents[-1]
        parents.append(name)
    return drawn


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every public exception class defined in gateway and protocols, by module path
    (a leading underscore marks a class that never leaves its module)."""
    found: dict[str, type[BaseException]] = {}
    for package in (gateway, protocols):
        for module_info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(module_info.name)
            for name, value in vars(module).items():
                if (
                    not name.startswith("_")
                    and inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                ):
                    found[f"{module.__name__}.{name}"] = value
    return found


def test_every_drawn_class_has_the_base_it_is_drawn_under() -> None:
    drawn = drawn_tree()
    classes = {cls.__name__: cls for cls in defined_exceptions().values()}
    assert drawn, "no tree found in gateway.exceptions' docstring"
    for name, parent in drawn.items():
        if name == "TelegramError":
            continue  # python-telegram-bot's
        cls = classes.get(name) or getattr(builtins, name, None)
        assert cls is not None, f"{name} is drawn but not defined"
        assert parent in {base.__name__ for base in cls.__bases__}, (
            f"{name} is drawn under {parent}, its bases are {cls.__bases__}"
        )


def test_every_exception_class_is_drawn_or_named_as_internal() -> None:
    doc = gateway.exceptions.__doc__ or ""
    drawn = drawn_tree()
    for path, cls in defined_exceptions().items():
        name = cls.__name__
        if name in drawn:
            continue
        internal = doc.split("never reaching an application:", 1)[1]
        assert f"``{name}``" in internal, f"{path} is neither in the tree nor named as internal"
