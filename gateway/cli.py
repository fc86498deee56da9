"""The ``gateway`` command: ``gateway <web|mqtt|telegram|worker|run> [APP]``.

Every subcommand takes the ASGI application as ``APP`` (``module:attribute``),
defaulting to ``ASGI_APPLICATION`` from ``DJANGO_SETTINGS_MODULE``, in the style
of uvicorn and daphne. Each interface server contributes its own options and
service through a *launcher* module (see :class:`Launcher`); ``gateway run``
starts, in one process and one event loop, every server the application routes
to plus the workers for the channel names it routes.

Whatever the subcommand, :func:`main` is the one launch path: it names the process
in the metrics registry, adds the health heartbeat
(:class:`protocols.health.HealthService`), checks for a first admin where the
process serves the site, and prints the summary (:mod:`gateway.startup`) once
every service has started.

This module (with the ``runserver`` command) is the only part of ``gateway`` that
imports ``protocols``, and only to start servers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from gateway.types import ASGIApp

if TYPE_CHECKING:
    from gateway.startup import Note
    from protocols.http_routes import HttpRoute
    from protocols.service import Service

logger = logging.getLogger("gateway.server")


class Launcher(Protocol):
    """What a ``protocols.<name>.launcher`` module provides to the CLI.

    A launcher whose service takes requests over HTTP (Telegram webhooks) also
    defines ``http_route(service, args) -> protocols.http_routes.HttpRoute | None``;
    gateway's web server then serves that route (see :func:`build_services`).
    """

    #: One line shown by ``gateway --help``.
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def wanted(self, application: Any, args: argparse.Namespace) -> bool:
        """Whether ``gateway run`` should start this server for ``application``."""
        ...

    def build(self, application: Any, args: argparse.Namespace) -> Any:
        """A :class:`protocols.service.Service` serving ``application``."""
        ...


#: Subcommands whose process serves the project's pages (the dashboard, the admin).
SITE_COMMANDS = ("run", "web")

#: Subcommands of processes that may have no web server: they serve the health
#: probes on ``--health-port`` instead (protocols.readiness).
PROBED_COMMANDS = ("mqtt", "telegram", "worker")

#: Subcommand -> launcher module. Order is the start order of ``gateway run``.
LAUNCHERS = {
    "web": "protocols.websocket.launcher",
    "mqtt": "protocols.mqtt.launcher",
    "telegram": "protocols.telegram.launcher",
    "worker": "gateway.worker_launcher",
}


def load_launcher(name: str) -> Launcher | None:
    """The launcher for ``name``, or None while that server is not part of this install."""
    try:
        module: Any = importlib.import_module(LAUNCHERS[name])
    except ModuleNotFoundError as exc:
        if exc.name is not None and LAUNCHERS[name].startswith(exc.name):
            return None
        raise
    launcher: Launcher = module
    return launcher


def load_application(path: str | None, app_dir: str | None = None) -> Any:
    """Import ``module:attribute``, or ``ASGI_APPLICATION`` when ``path`` is None.

    As ``daphne``/``uvicorn`` do, ``app_dir`` (default: the current directory) is
    importable, and the settings may come from the application module itself (its
    ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)``): with the variable unset,
    the module is imported first. Django is set up before the application is returned,
    so it can use models.
    """
    import django
    from django.apps import apps

    directory = os.path.abspath(app_dir or os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if path is None:
        _require_settings_module("export it (e.g. project.settings) or name the APP")
        django.setup()
        from gateway.routing import get_default_application

        return get_default_application()
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ImproperlyConfigured(f"APP must look like module:attribute, not {path!r}")
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        django.setup()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"APP {path!r}: cannot import {module_name!r} ({exc})") from exc
    if not apps.ready:
        _require_settings_module(f"export it, or have {module_name} set it before Django loads")
        django.setup()
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(f"APP {path!r}: {module_name} has no {attribute!r}") from None


def _require_settings_module(hint: str) -> None:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ImproperlyConfigured(f"DJANGO_SETTINGS_MODULE is not set: {hint}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Serve a Django project over HTTP/WebSocket, MQTT and Telegram.",
    )
    add_log_level_argument(parser, default=os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the appliance: every server the application routes to, in one process",
        description="Run, in one process and one event loop, every interface server "
        "the application routes to and the workers for the channel names it routes.",
    )
    add_app_argument(run)
    add_loop_argument(run)
    add_log_level_argument(run)
    add_demo_admin_argument(run)
    for name in LAUNCHERS:
        launcher = load_launcher(name)
        if launcher is None:
            continue
        group = run.add_argument_group(name)
        launcher.add_arguments(_GroupAdapter(group))  # type: ignore[arg-type]
        command = sub.add_parser(name, help=launcher.HELP, description=launcher.HELP)
        if name != "worker":
            add_app_argument(command)
        add_loop_argument(command)
        add_log_level_argument(command)
        if name in SITE_COMMANDS:
            add_demo_admin_argument(command)
        if name in PROBED_COMMANDS:
            add_health_arguments(command)
        launcher.add_arguments(command)
    add_check_command(sub)
    return parser


def add_health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve /healthz and /readyz on this port (default: off)",
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="address for --health-port (default: %(default)s; 0.0.0.0 for probes "
        "from outside, e.g. Kubernetes)",
    )


def build_check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway")
    add_log_level_argument(parser, default=os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    add_check_command(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def _subcommand(arguments: Sequence[str]) -> str | None:
    """The subcommand named in ``arguments`` (after ``--log-level LEVEL``, if given)."""
    rest = list(arguments)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option == "--log-level" and rest:
            rest.pop(0)
    return rest[0] if rest else None


def add_check_command(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="ask a running gateway process whether it is ready (exit 1 with the reason if not)",
        description="GET /readyz (or /healthz with --live) from a gateway process on this "
        "machine: its web server's port, or the --health-port of the others. Exits 0 when "
        "it answers 200, else 1 and prints why: for container health checks.",
    )
    check.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    check.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    check.add_argument("--live", action="store_true", help="ask /healthz: only that it runs")
    check.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)g)"
    )
    add_log_level_argument(check)


class _GroupAdapter:
    """Lets ``gateway run`` take every launcher's options, skipping repeats."""

    def __init__(self, group: argparse._ArgumentGroup) -> None:
        self.group = group

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        try:
            return self.group.add_argument(*names, **kwargs)
        except argparse.ArgumentError:
            return None  # the same option was added by an earlier launcher

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        return self


def add_app_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="the ASGI application as module:attribute "
        "(default: ASGI_APPLICATION from DJANGO_SETTINGS_MODULE)",
    )
    parser.add_argument(
        "--app-dir",
        default=None,
        help="the directory APP is imported from (default: the current directory)",
    )


def add_log_level_argument(
    parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS
) -> None:
    """``--log-level``, before the subcommand or after it (where it overrides nothing
    unless given: ``SUPPRESS`` leaves the value parsed before the subcommand)."""
    parser.add_argument(
        "--log-level",
        default=default,
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: info, or $GATEWAY_LOG_LEVEL)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gateway")
    except PackageNotFoundError:
        return "(not installed)"


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    """``--loop`` and ``--shutdown-timeout``: how every server process runs and stops."""
    from protocols.runner import DEFAULT_SHUTDOWN_TIMEOUT, LOOPS

    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop, asyncio's own, or auto (default: uvloop when installed)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long every service together may take to finish "
        "in-flight work before it is cancelled (default: %(default)g)",
    )


def add_demo_admin_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo-admin",
        action="store_true",
        help="when no admin exists, create one with a random password, shown once at start",
    )


def build_services(args: argparse.Namespace) -> list[Any]:
    """The services of one ``gateway`` command, in start order.

    Routes a service needs served over HTTP (:func:`http_route`) are served by
    gateway's web server: under ``gateway run`` on the web server's own port, in
    front of the project's application; under ``gateway <name>`` by a web server
    for those routes alone, started before the service so the routes answer as
    soon as the service announces them (e.g. ``setWebhook``).
    """
    if args.command != "run":
        launcher = load_launcher(args.command)
        assert launcher is not None  # the subcommand exists only when it loaded
        if args.command == "worker":
            return with_probes([launcher.build(None, args)], args)
        service = launcher.build(load_application(args.app, args.app_dir), args)
        route = http_route(launcher, service, args)
        if route is None:
            return with_probes([service], args)
        return with_probes([route_server(route), service], args)
    application = load_application(args.app, args.app_dir)
    built: dict[str, Any] = {}
    routes: dict[str, ASGIApp] = {}
    for name in LAUNCHERS:
        launcher = load_launcher(name)
        if name == "web" or launcher is None or not launcher.wanted(application, args):
            continue
        built[name] = launcher.build(application, args)
        route = http_route(launcher, built[name], args)
        if route is not None:
            routes[route.path] = route.app
    web = load_launcher("web")
    if web is not None and (routes or web.wanted(application, args)):
        from protocols.http_routes import PathDispatcher

        served = PathDispatcher(routes, application) if routes else application
        built["web"] = web.build(served, args)
    elif routes:
        raise ImproperlyConfigured("webhooks need gateway's web server, which is not installed")
    if not built:
        raise ImproperlyConfigured("the application routes to no protocol gateway can serve")
    services = [built[name] for name in LAUNCHERS if name in built]
    watch_readiness(services)
    return services


def http_route(launcher: Launcher, service: Any, args: argparse.Namespace) -> HttpRoute | None:
    """The :class:`~protocols.http_routes.HttpRoute` ``service`` needs served, or None."""
    describe = getattr(launcher, "http_route", None)
    return describe(service, args) if describe is not None else None


def with_probes(services: list[Any], args: argparse.Namespace) -> list[Any]:
    """``services``, led by a web server for the health probes alone when
    ``--health-port`` asks for one; every web server among them checks them all."""
    port = getattr(args, "health_port", None)
    if port is not None:
        from protocols.websocket.server import ProbeServer

        services = [ProbeServer(args.health_host, port), *services]
    watch_readiness(services)
    return services


def watch_readiness(services: Sequence[Any]) -> None:
    """Each web server's ``/readyz`` also checks every other service of the process."""
    for server in services:
        readiness = getattr(server, "readiness", None)
        if readiness is not None:
            for service in services:
                if service is not server:
                    readiness.watch(service)


def route_server(route: HttpRoute) -> Service:
    """Gateway's web server serving ``route`` alone, on the route's host and port."""
    from protocols.websocket.config import Config
    from protocols.websocket.server import WebServer

    config = Config(host=route.host, port=route.port, lifespan="off", access_log=False)
    return WebServer(route.app, config)


def ready_summary(command: str, services: Sequence[Any], site: bool, admin: Note | None) -> str:
    """What :func:`main` prints once every service has started."""
    from gateway.startup import summarize

    title = f"gateway {command} is ready (pid {os.getpid()}); Ctrl+C stops it"
    return summarize(title, services, site=site, admin=admin).render()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # `gateway check` runs every few seconds in each container: it parses its own
    # arguments without importing every server (what build_parser does).
    parser = build_check_parser() if _subcommand(arguments) == "check" else build_parser()
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if args.command == "check":
        return check(args)
    from gateway import metrics
    from gateway.startup import first_admin
    from protocols.health import HealthService
    from protocols.runner import EventLoopUnavailable, ServiceStartError, serve

    try:
        services = [*build_services(args), HealthService()]
        metrics.registry.identify(args.command)
        site = args.command in SITE_COMMANDS
        admin = first_admin(args.demo_admin) if site else None

        def announce() -> None:
            print(ready_summary(args.command, services, site, admin), flush=True)

        serve(services, loop=args.loop, shutdown_timeout=args.shutdown_timeout, started=announce)
    except (ImproperlyConfigured, EventLoopUnavailable) as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except ServiceStartError as exc:
        print(f"gateway: cannot start {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def check(args: argparse.Namespace) -> int:
    """``gateway check``: 0 when the process answers 200, else 1 with the reason."""
    from protocols.readiness import LIVE_PATH, READY_PATH, probe

    url = f"http://{args.host}:{args.port}{LIVE_PATH if args.live else READY_PATH}"
    ok, answer = probe(url, args.timeout)
    print(answer.rstrip("\n"), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
