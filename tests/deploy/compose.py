"""``docker-compose.yml`` and the ``Dockerfile`` read as Docker would read them, no Docker.

:func:`load` interpolates the compose file with a ``.env``'s variables (``${VAR}``,
``${VAR:-default}``, ``${VAR:?error}``, ``$$``: Compose Specification, "Interpolation")
and resolves YAML merge keys. :class:`Image` is what the Dockerfile's last stage sets
for every container: ``ENV``, ``ENTRYPOINT`` and ``CMD``. :meth:`Stack.argv` and
:meth:`Stack.environment` are then a service's process as its container would run it:
``entrypoint + command`` (each defaulting to the image's) and the image's environment
overlaid with the service's.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        value = variables.get(match["name"])
        op, arg = match["op"], match["arg"] or ""
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise InterpolationError(f"{match['name']}: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (comments and blank lines skipped)."""
    variables = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            variables[key.strip()] = value.strip()
    return variables


def raw() -> dict[str, Any]:
    """The compose file as YAML, merge keys resolved, nothing interpolated."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@dataclass(frozen=True)
class Image:
    """What the Dockerfile's final stage gives every container."""

    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    #: Every instruction of the final stage, as (INSTRUCTION, arguments).
    instructions: list[tuple[str, str]]
    #: Every stage's FROM line.
    bases: list[str]

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Image:
        text = re.sub(r"\\\n", " ", path.read_text())
        stages: list[list[tuple[str, str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, arguments = line.partition(" ")
            if instruction.upper() == "FROM":
                stages.append([])
            stages[-1].append((instruction.upper(), arguments.strip()))
        final = stages[-1]
        env: dict[str, str] = {}
        entrypoint: list[str] = []
        cmd: list[str] = []
        for instruction, arguments in final:
            if instruction == "ENV":
                for pair in shlex.split(arguments):
                    key, _, value = pair.partition("=")
                    env[key] = value
            elif instruction == "ENTRYPOINT":
                entrypoint = json.loads(arguments)
            elif instruction == "CMD":
                cmd = json.loads(arguments)
        bases = [stage[0][1] for stage in stages]
        return cls(env, entrypoint, cmd, final, bases)


@dataclass
class Stack:
    """The compose file interpolated with ``variables`` (a ``.env``)."""

    services: dict[str, dict[str, Any]]
    image: Image

    @classmethod
    def load(cls, variables: Mapping[str, str]) -> Stack:
        document = _interpolate_tree(raw(), variables)
        return cls(document["services"], Image.read())

    def argv(self, name: str) -> list[str]:
        """The service's process: ``entrypoint`` + ``command``, each the image's by default.

        As in Docker, a service that sets ``entrypoint`` drops the image's ``CMD``.
        """
        service = self.services[name]
        entrypoint = service.get("entrypoint", self.image.entrypoint)
        default_cmd = self.image.cmd if "entrypoint" not in service else []
        return [*entrypoint, *service.get("command", default_cmd)]

    def environment(self, name: str) -> dict[str, str]:
        environment = self.services[name].get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        return {**self.image.env, **{k: str(v) for k, v in environment.items()}}

    def replicas(self, name: str) -> int:
        return int(self.services[name].get("deploy", {}).get("replicas", 1))

    def uses_image(self, name: str) -> bool:
        """Whether the service runs the gateway image (else an off-the-shelf one)."""
        return "build" in self.services[name]
