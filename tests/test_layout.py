"""Test files mirror the modules they test (the architecture issue; STYLE.md 3).

``tests/<package path>/test_<module>.py`` tests ``<package path>/<module>.py`` for the
three packages ``gateway``, ``protocols`` and ``project``; a package's own
``__init__.py`` is tested by ``test_<package>.py`` beside its tests' directory (the
layer registry, ``gateway/layers/__init__.py``, by ``tests/gateway/test_layers.py``).

Tests of a feature rather than of one module (end to end, across processes, fuzzing,
properties over several modules, a contract run over every back-end) sit beside the
module tests of the package they exercise, where its fixtures are, and are named in
:data:`FEATURES`; whole-tree checks sit at the top of ``tests/`` (:data:`TREE_CHECKS`)
and the tests of the examples, of the deployment and of Channels compatibility in
their own directories (:data:`FEATURE_DIRECTORIES`). Anything else is misplaced.

A module with logic (one that defines a function or a method) has its test file, or is
named in :data:`UNMIRRORED` with the test file that exercises it instead. That list only
shrinks: a new module without a test file fails here, and so does an entry whose module
gained its test file or is gone.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PACKAGES = ("gateway", "protocols", "project")

#: Whole-tree checks: what they test is every package at once.
TREE_CHECKS = frozenset(
    {
        "tests/test_dependencies.py",
        "tests/test_imports.py",
        "tests/test_layout.py",
        "tests/test_public_surface.py",
        "tests/test_references.py",
    }
)

#: Directories of feature tests that mirror no package.
FEATURE_DIRECTORIES = {
    "tests/compat": "the same code run on Channels 4.3.2 and on gateway",
    "tests/deploy": "docker-compose.yml and the deployment files",
    "tests/example": "the example chat project, through a browser and across processes",
}

#: Feature tests inside the mirrored directories: what each exercises.
FEATURES = {
    "tests/gateway/layers/test_contract.py": "the layer contract, over every back-end",
    "tests/gateway/layers/test_fanout.py": "group sends to browser sockets, real sockets",
    "tests/gateway/layers/redis/test_faults.py": "Redis crashes and restarts",
    "tests/gateway/layers/redis/test_processes.py": "two processes over the Redis layers",
    "tests/gateway/layers/redis/test_receive_only.py": "receive-only processes, restarts",
    "tests/gateway/layers/redis/test_scaleout.py": "sharding and Redis Cluster",
    "tests/gateway/layers/redis/test_tls_sentinel.py": "TLS and Sentinel failover",
    "tests/gateway/routing/test_lifespan_uvicorn.py": "uvicorn's lifespan over the routers",
    "tests/gateway/routing/test_public_names.py": "Channels' names in routing, middleware",
    "tests/gateway/routing/test_return_values.py": "routers and middleware, as Channels'",
    "tests/gateway/telegram/test_event_properties.py": "properties of the translation",
    "tests/gateway/testing/test_communicators.py": "every communicator and the package face",
    "tests/protocols/mqtt/test_fuzz.py": "a seeded fuzz of the embedded broker",
    "tests/protocols/mqtt/test_redis_restart.py": "mqtt.publish across a Redis restart",
    "tests/protocols/mqtt/test_restart.py": "broker restarts mid-stream",
    "tests/protocols/mqtt/test_tls.py": "TLS in both roles",
    "tests/protocols/telegram/test_bots.py": "bots end to end, polling and webhook",
    "tests/protocols/telegram/test_fuzz_webhook.py": "a seeded fuzz of the webhook",
    "tests/protocols/telegram/test_resilience.py": "429 storms, restarts, failing consumers",
    "tests/protocols/telegram/test_seed.py": "DESIGN.md's seed example, end to end",
    "tests/protocols/websocket/test_differential.py": "the same apps under uvicorn",
    "tests/protocols/websocket/test_example.py": "the example project served for real",
    "tests/protocols/websocket/test_fuzz.py": "a seeded fuzz of the HTTP and WebSocket doors",
    "tests/protocols/websocket/test_gateway_web.py": "`gateway web` as a subprocess",
    "tests/protocols/websocket/test_properties.py": "properties of the pure cores",
    "tests/protocols/websocket/test_runserver.py": "`manage.py runserver`",
    "tests/protocols/websocket/test_shutdown.py": "shutdown under traffic",
    "tests/project/chatbot/test_story.py": "the chatbot's story over real sockets",
    "tests/project/dashboard/test_browser.py": "the dashboard in a headless Chromium",
    "tests/project/dashboard/test_fleet_browser.py": "the product's story in Chromium",
    "tests/project/dashboard/test_health_processes.py": "health of two processes over Redis",
    "tests/project/iot/test_appliance_sqlite.py": "the IoT bridge in `gateway run`",
    "tests/project/iot/test_mqtt.py": "the IoT bridge over real MQTT, both roles",
    "tests/project/iot/test_replicas.py": "several MQTT processes, one device",
    "tests/project/test_appliance.py": "`gateway run` as the README runs it",
    "tests/project/test_appliance_processes.py": "the project scaled out over Redis",
    "tests/project/test_first_start.py": "the first start, as scripts/run does it",
}

#: Modules with logic but no test file of their own, and the test file that exercises
#: them through their neighbours (measured with coverage). Only ever remove entries.
UNMIRRORED = {
    "gateway/botapi/http.py": "tests/gateway/botapi/test_server.py",
    "gateway/botapi/params.py": "tests/gateway/botapi/test_server.py",
    "gateway/botapi/state.py": "tests/gateway/botapi/test_server.py",
    "gateway/devices/models.py": "tests/gateway/devices/test_acl.py",
    "gateway/generic/codec.py": "tests/gateway/generic/test_websocket.py",
    "gateway/layers/base.py": "tests/gateway/layers/test_contract.py",
    "gateway/layers/overflow.py": "tests/gateway/layers/test_contract.py",
    "gateway/layers/receiving.py": "tests/gateway/test_worker.py",
    "gateway/layers/redis/availability.py": "tests/gateway/layers/redis/test_faults.py",
    "gateway/layers/redis/connection.py": "tests/gateway/layers/redis/test_faults.py",
    "gateway/layers/redis/core.py": "tests/gateway/layers/test_contract.py",
    "gateway/layers/redis/errors.py": "tests/gateway/layers/redis/test_faults.py",
    "gateway/layers/redis/multiplexer.py": "tests/gateway/layers/test_contract.py",
    "gateway/layers/redis/scripts.py": "tests/gateway/layers/test_contract.py",
    "gateway/layers/stats.py": "tests/gateway/test_metrics.py",
    "gateway/management/commands/runserver.py": "tests/protocols/websocket/test_runserver.py",
    "gateway/management/commands/runworker.py": "tests/gateway/test_worker.py",
    "gateway/routing/validation.py": "tests/gateway/routing/test_protocol.py",
    "gateway/stopping.py": "tests/gateway/test_worker.py",
    "gateway/telegram/accounts.py": "tests/gateway/telegram/test_middleware.py",
    "gateway/telegram/models.py": "tests/gateway/telegram/test_middleware.py",
    "gateway/testing/application.py": "tests/gateway/testing/test_communicators.py",
    "gateway/testing/http.py": "tests/gateway/testing/test_communicators.py",
    "gateway/testing/mqtt.py": "tests/gateway/generic/test_mqtt.py",
    "gateway/testing/telegram.py": "tests/gateway/generic/test_telegram.py",
    "gateway/testing/websocket.py": "tests/gateway/testing/test_communicators.py",
    "gateway/worker_launcher.py": "tests/gateway/test_worker.py",
    "project/chatbot/cards.py": "tests/project/chatbot/test_bot.py",
    "project/chatbot/models.py": "tests/project/chatbot/test_bot.py",
    "project/chatbot/services.py": "tests/project/chatbot/test_bot.py",
    "project/dashboard/credentials.py": "tests/project/dashboard/test_fleet.py",
    "project/dashboard/fleet_socket.py": "tests/project/dashboard/test_device_socket.py",
    "project/dashboard/forms.py": "tests/project/dashboard/test_fleet.py",
    "project/dashboard/snapshots.py": "tests/project/dashboard/test_device_socket.py",
    "project/dashboard/sockets.py": "tests/project/dashboard/test_consumers.py",
    "project/dashboard/users.py": "tests/project/dashboard/test_chats.py",
    "project/iot/alerts.py": "tests/project/iot/test_consumers.py",
    "project/iot/commands.py": "tests/project/iot/test_services.py",
    "project/iot/events.py": "tests/project/iot/test_consumers.py",
    "project/iot/ingest.py": "tests/project/iot/test_consumers.py",
    "project/iot/models.py": "tests/project/iot/test_services.py",
    "protocols/fd_limit.py": "tests/protocols/websocket/test_server.py",
    "protocols/http_routes.py": "tests/protocols/telegram/test_launcher.py",
    "protocols/launch.py": "tests/gateway/test_cli.py",
    "protocols/mqtt/broker_plugins.py": "tests/protocols/mqtt/test_broker.py",
    "protocols/mqtt/embedded.py": "tests/protocols/mqtt/test_broker.py",
    "protocols/mqtt/link.py": "tests/protocols/mqtt/test_bridge.py",
    "protocols/mqtt/listeners.py": "tests/protocols/mqtt/test_tls.py",
    "protocols/mqtt/server.py": "tests/protocols/mqtt/test_bridge.py",
    "protocols/service.py": "tests/protocols/test_runner.py",
    "protocols/telegram/server.py": "tests/protocols/telegram/test_resilience.py",
    "protocols/websocket/accesslog.py": "tests/protocols/websocket/test_http.py",
    "protocols/websocket/body_deadline.py": "tests/protocols/websocket/test_properties.py",
    "protocols/websocket/config.py": "tests/protocols/websocket/test_server.py",
    "protocols/websocket/context.py": "tests/protocols/websocket/test_server.py",
    "protocols/websocket/flow.py": "tests/protocols/websocket/test_http.py",
    "protocols/websocket/http_cycle.py": "tests/protocols/websocket/test_http.py",
    "protocols/websocket/lifespan.py": "tests/protocols/websocket/test_server.py",
    "protocols/websocket/thread.py": "tests/protocols/websocket/test_server.py",
}


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def has_logic(module: Path) -> bool:
    """Whether ``module`` defines a function or a method, not only names and classes."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(tree))


def modules_with_logic() -> list[str]:
    return sorted(
        relative(module)
        for package in PACKAGES
        for module in (ROOT / package).rglob("*.py")
        if "migrations" not in module.parts and has_logic(module)
    )


def mirror_of(module: str) -> str:
    """``<path>/<name>.py`` and ``<path>/<name>/__init__.py`` -> ``tests/<path>/test_<name>.py``."""
    parts = Path(module).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return Path("tests", *parts[:-1], f"test_{parts[-1]}.py").as_posix()


def module_tested_by(test_file: str) -> Path | None:
    """The module a mirrored test file names, if it names one that exists."""
    path = Path(test_file).relative_to("tests")
    name = path.stem.removeprefix("test_")
    for candidate in (path.parent / f"{name}.py", path.parent / name / "__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def every_test_file() -> list[str]:
    return sorted(relative(path) for path in TESTS.rglob("test_*.py"))


def test_every_test_file_mirrors_a_module_or_is_a_known_feature_test() -> None:
    misplaced = []
    for test_file in every_test_file():
        top = Path(test_file).parts[1]
        if test_file in TREE_CHECKS or test_file in FEATURES:
            continue
        if top in PACKAGES:
            if module_tested_by(test_file) is None:
                misplaced.append(
                    f"{test_file}: names no module of {Path(test_file).parent.relative_to('tests')}"
                )
        elif not any(test_file.startswith(f"{directory}/") for directory in FEATURE_DIRECTORIES):
            misplaced.append(f"{test_file}: outside tests/{{{','.join(PACKAGES)}}}")
    assert not misplaced, (
        "test files go to tests/<package path>/test_<module>.py; a feature test is named "
        "in FEATURES:\n" + "\n".join(misplaced)
    )


def test_every_module_with_logic_has_its_test_file() -> None:
    missing = [
        f"{module}: no {mirror_of(module)}"
        for module in modules_with_logic()
        if module not in UNMIRRORED and not (ROOT / mirror_of(module)).is_file()
    ]
    assert not missing, "\n".join(missing)


def test_the_lists_name_only_what_exists_and_shrink() -> None:
    with_logic = set(modules_with_logic())
    stale = [f"FEATURES: {path} is gone" for path in FEATURES if not (ROOT / path).is_file()]
    stale += [
        f"FEATURES: {path} tests {tested}: it is that module's test file"
        for path in FEATURES
        if (ROOT / path).is_file() and (tested := module_tested_by(path)) is not None
    ]
    stale += [f"TREE_CHECKS: {path} is gone" for path in TREE_CHECKS if not (ROOT / path).is_file()]
    for module, exercised_by in UNMIRRORED.items():
        if module not in with_logic:
            stale.append(f"UNMIRRORED: {module} is gone or has no logic: remove it")
        elif (ROOT / mirror_of(module)).is_file():
            stale.append(f"UNMIRRORED: {module} has {mirror_of(module)} now: remove it")
        if not (ROOT / exercised_by).is_file():
            stale.append(f"UNMIRRORED: {module} names {exercised_by}, which does not exist")
    assert not stale, "\n".join(stale)


def test_modules_and_packages_map_to_their_test_files() -> None:
    assert mirror_of("gateway/layers/memory.py") == "tests/gateway/layers/test_memory.py"
    assert mirror_of("gateway/layers/__init__.py") == "tests/gateway/test_layers.py"
    assert module_tested_by("tests/gateway/test_layers.py") == Path("gateway/layers/__init__.py")
    assert module_tested_by("tests/gateway/layers/test_memory.py") == Path(
        "gateway/layers/memory.py"
    )
    assert module_tested_by("tests/gateway/layers/test_contract.py") is None  # a feature test
    assert module_tested_by("tests/compat/test_layers.py") is None  # mirrors no package
