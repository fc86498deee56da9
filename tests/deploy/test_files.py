"""The deployment files hold what docs/deploy.md promises, checked without Docker.

``docker-compose.yml`` validates against the Compose Specification's JSON schema
(``data/compose-spec.json``, provenance in ``data/README.md``), as written and once
interpolated with ``.env.example``; every service has a health check, a restart
policy and ``depends_on`` conditions; secrets come only from the env file. The
``Dockerfile`` builds a slim, non-root, health-checked runtime image without test or
bench dependencies. What the services *do* is proven by ``test_stack.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.compose import (
    ENV_EXAMPLE,
    ROOT,
    Image,
    InterpolationError,
    Stack,
    raw,
    read_env_file,
)

SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
#: Environment variables that hold secrets: they must come from the env file.
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
#: The one-shot service the others wait for.
ONE_SHOT = "migrate"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack.load(read_env_file(ENV_EXAMPLE))


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(document)


def test_the_compose_file_is_valid_against_the_compose_specification(stack: Stack) -> None:
    validate(raw())
    validate({**raw(), "services": stack.services})


def test_the_validation_catches_a_malformed_service() -> None:
    broken = raw()
    broken["services"]["web"]["depends_on"]["redis"]["condition"] = "service_happy"
    with pytest.raises(jsonschema.ValidationError, match="service_happy"):
        validate(broken)


def test_every_service_is_health_checked_restarted_and_waits_for_what_it_needs(
    stack: Stack,
) -> None:
    for name, service in stack.services.items():
        assert "restart" in service, name
        if name == ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        for needed, condition in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if needed == ONE_SHOT else "service_healthy"
            assert condition == {"condition": expected}, (name, needed)
        if stack.uses_image(name) and name != "botapi":
            assert ONE_SHOT in service["depends_on"], name
    assert stack.services[ONE_SHOT]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_gateway_services_are_probed_by_gateway_check_on_their_probe_port(stack: Stack) -> None:
    for name in ("web", "mqtt", "telegram", "worker"):
        argv = stack.argv(name)
        test = stack.services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "gateway", "check"], name
        port = test[test.index("--port") + 1]
        flag = "--port" if name == "web" else "--health-port"
        assert argv[argv.index(flag) + 1] == port, name


def test_replicas_scale_where_the_protocol_allows(stack: Stack) -> None:
    assert stack.replicas("web") >= 2
    assert stack.services["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert stack.replicas("mqtt") >= 2
    # Several bridges split the load only in one shared-subscription group.
    assert "share=gateway" in stack.environment("mqtt")["MQTT_URL"]
    # Telegram refuses a second poller of the same bot (409 Conflict).
    assert stack.replicas("telegram") == 1


def test_config_files_mounted_into_services_are_in_the_repository(stack: Stack) -> None:
    mounted = [
        volume.split(":")[0]
        for service in stack.services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounted
    for path in mounted:
        assert (ROOT / path).is_file(), path


def test_secrets_come_only_from_the_env_file() -> None:
    """Every secret in the compose file is a ``${VARIABLE}``; ``.env.example`` names
    each variable the stack requires, with values that say to change them."""
    compose = (ROOT / "docker-compose.yml").read_text()
    for service in raw()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key):
                assert str(value).startswith("${"), key
    for url in re.findall(r"\w+://[^\s\"']*@", compose):
        assert re.fullmatch(r"\w+://\w*:\$\{\w+(:\?[^}]*)?\}@", url), url
    example = read_env_file(ENV_EXAMPLE)
    required = set(re.findall(r"\$\{(\w+):\?", compose))
    assert required <= set(example), required - set(example)
    for key, value in example.items():
        if SECRET.search(key) and key != "TELEGRAM_BOT_TOKEN" and value:
            assert "change-me" in value, key
    with pytest.raises(InterpolationError, match="SECRET_KEY"):
        Stack.load({})


def test_the_dockerfile_builds_a_slim_non_root_health_checked_runtime_image() -> None:
    image = Image.read()
    assert len(image.bases) >= 2, "multi-stage"
    assert all(re.fullmatch(r"python:3\.1[1-9]-slim( AS \w+)?", base) for base in image.bases)
    users = [arguments for instruction, arguments in image.instructions if instruction == "USER"]
    assert users
    assert users[-1] not in ("root", "0"), users
    healthcheck = [args for instruction, args in image.instructions if instruction == "HEALTHCHECK"]
    assert healthcheck
    assert 'CMD ["gateway", "check"' in healthcheck[0]
    assert image.entrypoint == ["gateway"]
    assert image.cmd[0] == "web"
    runs = " ".join(args for instruction, args in image.instructions if instruction == "RUN")
    assert "collectstatic" in runs
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n]*)", dockerfile)
    assert installs
    assert not any("[" in line for line in installs), installs
    assert "COPY tests" not in dockerfile
    assert "COPY bench" not in dockerfile


def test_the_image_leaves_out_tests_benchmarks_and_local_secrets() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("tests", "bench", ".env", ".git", ".venv"):
        assert path in ignored, path
