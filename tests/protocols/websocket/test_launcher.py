"""``gateway web`` options and ``gateway run``'s choice to start the web server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.cli import build_parser, launcher_options
from protocols.websocket import Config, launcher
from protocols.websocket.server import WebServer


def options(*argv: str) -> launcher.WebOptions:
    """``gateway ARGV...``'s web server options, as the command line builds them."""
    built: launcher.WebOptions = launcher_options(launcher, build_parser().parse_args(argv))
    return built


def parse(*argv: str) -> Config:
    return launcher.web_config(options("web", *argv))


def test_options_become_config() -> None:
    config = parse(
        "app:application",
        "--host=0.0.0.0",
        "--port=9000",
        "--proxy-headers",
        "--forwarded-allow-ips=10.0.0.0/8",
        "--root-path=/chat/",
        "--ws-max-size=2048",
        "--limit-concurrency=10",
        "--no-access-log",
    )
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.proxy_headers
    assert config.forwarded_allow_ips.trusts("10.9.9.9")
    assert not config.forwarded_allow_ips.trusts("127.0.0.1")
    assert config.root_path == "/chat"
    assert config.ws_max_size == 2048
    assert config.limit_concurrency == 10
    assert not config.access_log


def test_defaults() -> None:
    config = parse()
    assert (config.host, config.port, config.ws_max_size) == ("127.0.0.1", 8000, 1 << 20)
    assert not config.proxy_headers
    assert config.limit_concurrency == Config().limit_concurrency == 10_000
    assert (config.timeout_body, config.body_min_rate) == (20.0, 500.0)


def test_slow_client_limits_and_no_connection_limit() -> None:
    config = parse(
        "--timeout-request-head=3",
        "--timeout-body=4",
        "--body-min-rate=100",
        "--limit-concurrency=0",
    )
    assert (config.timeout_request_head, config.timeout_body, config.body_min_rate) == (3, 4, 100)
    assert config.limit_concurrency is None
    with pytest.raises(ImproperlyConfigured, match="body_min_rate must be positive"):
        parse("--body-min-rate=0")


def test_bad_combinations_are_configuration_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="uds and fd"):
        parse("--uds=/tmp/x.sock", "--fd=3")
    with pytest.raises(ImproperlyConfigured, match="both"):
        parse("--ssl-certfile=cert.pem")


class Router:
    def __init__(self, *protocols: str) -> None:
        self.application_mapping = dict.fromkeys(protocols)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (Router("http", "mqtt"), True),
        (Router("websocket"), True),
        (Router("mqtt", "telegram"), False),
        (lambda scope, receive, send: None, True),
    ],
)
def test_wanted_when_the_app_serves_http_or_websocket(app: object, expected: bool) -> None:
    assert launcher.wanted(app, options("run")) is expected


def test_build_returns_the_web_service() -> None:
    service = launcher.build(Router("http"), options("web", "--port=0"))
    assert isinstance(service, WebServer)
    assert service.name == "web"
