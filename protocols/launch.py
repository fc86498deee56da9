"""The one launch layer: which services a gateway process runs, built from typed options.

Every way a server starts goes through here:

- ``gateway <web|mqtt|telegram|worker>`` (:func:`server_services`) and ``gateway run``
  (:func:`appliance_services`): :mod:`gateway.cli` parses the command line into each
  launcher's options and runs the :class:`~protocols.runner.ServiceGroup` returned;
- ``manage.py runserver`` (:func:`web_server`, run by a ServiceGroup) and the
  live-server test case (:func:`web_server`, run by a :class:`~protocols.runner.ServiceThread`);
- ``manage.py runworker`` (:func:`worker`), which runs the worker with Channels'
  ``Worker.run()`` hook.

Each interface server contributes a *launcher* module (see :class:`Launcher`): its
options as a frozen dataclass (one field per command-line flag, same defaults), the
flags themselves, whether ``gateway run`` wants it, and ``build(application,
options)``. No launcher sees an ``argparse`` namespace.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from gateway.types import ASGIApp
from protocols.runner import ServiceGroup
from protocols.service import Service

if TYPE_CHECKING:
    from gateway.worker import Worker
    from gateway.worker_launcher import WorkerOptions
    from protocols.http_routes import HttpRoute
    from protocols.websocket.launcher import WebOptions
    from protocols.websocket.server import WebServer


class Launcher(Protocol):
    """What a launcher module (``protocols.<name>.launcher``) provides.

    A launcher whose service takes requests over HTTP (Telegram webhooks) also
    defines ``http_route(service, options) -> protocols.http_routes.HttpRoute | None``;
    gateway's web server then serves that route (see :func:`appliance_services`).
    """

    #: One line shown by ``gateway --help``.
    HELP: str
    #: The frozen dataclass of this server's options; its field names are the
    #: ``dest`` of the flags :meth:`add_arguments` adds.
    OPTIONS: type[Any]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def wanted(self, application: Any, options: Any) -> bool:
        """Whether ``gateway run`` should start this server for ``application``."""
        ...

    def build(self, application: Any, options: Any) -> Service:
        """A :class:`protocols.service.Service` serving ``application``."""
        ...


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


@dataclass(frozen=True)
class ProbeAddress:
    """Where a process without a web server of its own serves ``/healthz`` and ``/readyz``."""

    host: str
    port: int


def server_services(
    name: str,
    options: Any,
    app: str | None = None,
    app_dir: str | None = None,
    probes: ProbeAddress | None = None,
) -> ServiceGroup:
    """The services of ``gateway <name>``: that server, with what it needs besides.

    ``gateway worker`` takes no APP: it serves ``ASGI_APPLICATION``. A route the
    service needs served over HTTP (:func:`http_route`) gets a web server for that
    route alone, started before the service so the route answers as soon as the
    service announces it (e.g. ``setWebhook``). ``probes``: a web server for the
    health probes alone leads them.
    """
    launcher = load_launcher(name)
    if launcher is None:
        raise ImproperlyConfigured(f"gateway {name} is not part of this install")
    application = load_application(None if name == "worker" else app, app_dir)
    service = launcher.build(application, options)
    route = http_route(launcher, service, options)
    services = [service] if route is None else [route_server(route), service]
    if probes is not None:
        from protocols.websocket.server import ProbeServer

        services = [ProbeServer(probes.host, probes.port), *services]
    return ServiceGroup(services)


def appliance_services(
    options: Mapping[str, Any], app: str | None = None, app_dir: str | None = None
) -> ServiceGroup:
    """The services of ``gateway run``: every server the application routes to.

    ``options`` maps each launcher's name to its options. Routes a service needs
    served over HTTP are served on the web server's own port, in front of the
    project's application.
    """
    application = load_application(app, app_dir)
    built: dict[str, Service] = {}
    routes: dict[str, ASGIApp] = {}
    for name in LAUNCHERS:
        launcher = load_launcher(name)
        if name == "web" or launcher is None or not launcher.wanted(application, options[name]):
            continue
        built[name] = launcher.build(application, options[name])
        route = http_route(launcher, built[name], options[name])
        if route is not None:
            routes[route.path] = route.app
    web = load_launcher("web")
    if web is not None and (routes or web.wanted(application, options["web"])):
        from protocols.http_routes import PathDispatcher

        served = PathDispatcher(routes, application) if routes else application
        built["web"] = web.build(served, options["web"])
    elif routes:
        raise ImproperlyConfigured("webhooks need gateway's web server, which is not installed")
    if not built:
        raise ImproperlyConfigured("the application routes to no protocol gateway can serve")
    return ServiceGroup(built[name] for name in LAUNCHERS if name in built)


def http_route(launcher: Launcher, service: Service, options: Any) -> HttpRoute | None:
    """The :class:`~protocols.http_routes.HttpRoute` ``service`` needs served, or None."""
    describe = getattr(launcher, "http_route", None)
    route: HttpRoute | None = describe(service, options) if describe is not None else None
    return route


def route_server(route: HttpRoute) -> Service:
    """Gateway's web server serving ``route`` alone, on the route's host and port."""
    from protocols.websocket.config import Config
    from protocols.websocket.server import WebServer

    config = Config(host=route.host, port=route.port, lifespan="off", access_log=False)
    return WebServer(route.app, config)


def web_server(application: ASGIApp, options: WebOptions) -> WebServer:
    """Gateway's web server for ``application``, as ``gateway web`` builds it."""
    from protocols.websocket import launcher

    return launcher.build(application, options)


def worker(
    application: ASGIApp, options: WorkerOptions, worker_class: type[Worker] | None = None
) -> Worker:
    """The :class:`~gateway.worker.Worker` ``gateway worker`` builds (or a ``worker_class``)."""
    from gateway import worker_launcher

    if worker_class is None:
        return worker_launcher.build(application, options).worker
    return worker_launcher.build(application, options, worker_class).worker
