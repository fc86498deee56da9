"""The ``gateway`` command: ``gateway <web|mqtt|telegram|worker|run> [APP]``.

Every subcommand takes the ASGI application as ``APP`` (``module:attribute``),
defaulting to ``ASGI_APPLICATION`` from ``DJANGO_SETTINGS_MODULE``, in the style
of uvicorn and daphne. Each interface server contributes its flags through a
*launcher* module (:class:`protocols.launch.Launcher`); this module parses them
into each launcher's typed options (:func:`launcher_options`) and hands them to
the launch layer (:mod:`protocols.launch`), which builds the process's
:class:`~protocols.runner.ServiceGroup`. ``gateway run`` starts, in one process
and one event loop, every server the application routes to plus the workers for
the channel names it routes.

Whatever the subcommand, :func:`main` names the process in the metrics registry,
adds the health heartbeat (:class:`protocols.health.HealthService`), checks for a
first admin where the process serves the site, and prints the summary
(:mod:`gateway.startup`) once every service has started.

The parts of ``gateway`` that import ``protocols`` are the launchers and nothing
else: this module, the ``runserver`` and ``runworker`` commands, the worker's launcher
(:mod:`gateway.worker_launcher`) and the live-server test case, and only to start
servers. This is the only module that runs ``argparse``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from protocols.launch import (
    LAUNCHERS,
    Launcher,
    ProbeAddress,
    appliance_services,
    load_launcher,
    server_services,
)

if TYPE_CHECKING:
    from gateway.startup import Note
    from protocols.runner import ServiceGroup

logger = logging.getLogger("gateway.server")


#: Subcommands whose process serves the project's pages (the dashboard, the admin).
SITE_COMMANDS = ("run", "web")

#: Subcommands of processes that may have no web server: they serve the health
#: probes on ``--health-port`` instead (protocols.readiness).
PROBED_COMMANDS = ("mqtt", "telegram", "worker")


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


def launcher_options(launcher: Launcher, args: argparse.Namespace) -> Any:
    """``launcher``'s typed options (its ``OPTIONS``) from the parsed command line.

    Each field takes the flag of the same ``dest``; a flag the subcommand lacks
    (``CHANNEL...`` under ``gateway run``) leaves the field's default.
    """
    given = {
        field.name: getattr(args, field.name)
        for field in fields(launcher.OPTIONS)
        if hasattr(args, field.name)
    }
    return launcher.OPTIONS(
        **{
            name: tuple(value) if isinstance(value, list) else value
            for name, value in given.items()
        }
    )


def build_services(args: argparse.Namespace) -> ServiceGroup:
    """The services of one ``gateway`` command, in start order (:mod:`protocols.launch`)."""
    if args.command == "run":
        options = {}
        for name in LAUNCHERS:
            launcher = load_launcher(name)
            if launcher is not None:
                options[name] = launcher_options(launcher, args)
        return appliance_services(options, args.app, args.app_dir)
    launcher = load_launcher(args.command)
    assert launcher is not None  # the subcommand exists only when it loaded
    port = getattr(args, "health_port", None)
    return server_services(
        args.command,
        launcher_options(launcher, args),
        getattr(args, "app", None),
        getattr(args, "app_dir", None),
        probes=ProbeAddress(args.health_host, port) if port is not None else None,
    )


def ready_summary(command: str, services: Iterable[Any], site: bool, admin: Note | None) -> str:
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
    from protocols.runner import EventLoopUnavailable, ServiceGroup, ServiceStartError

    try:
        services = ServiceGroup([*build_services(args), HealthService()])
        metrics.registry.identify(args.command)
        site = args.command in SITE_COMMANDS
        admin = first_admin(args.demo_admin) if site else None

        def announce() -> None:
            print(ready_summary(args.command, services, site, admin), flush=True)

        services.run(loop=args.loop, shutdown_timeout=args.shutdown_timeout, started=announce)
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
