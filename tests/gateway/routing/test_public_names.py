"""The Channels names application code imports from gateway's routing and middleware modules."""

import importlib

import pytest

PUBLIC = {
    "gateway.routing": [
        "ProtocolTypeRouter",
        "URLRouter",
        "ChannelNameRouter",
        "get_default_application",
    ],
    "gateway.middleware": ["BaseMiddleware"],
    "gateway.sessions": ["CookieMiddleware", "SessionMiddleware", "SessionMiddlewareStack"],
    "gateway.auth": ["AuthMiddleware", "AuthMiddlewareStack", "get_user", "login", "logout"],
    "gateway.security.websocket": [
        "OriginValidator",
        "AllowedHostsOriginValidator",
        "WebsocketDenier",
    ],
}


@pytest.mark.parametrize(("module", "names"), PUBLIC.items())
def test_channels_names_are_importable(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    for name in names:
        assert callable(getattr(imported, name)), f"{module}.{name}"


def test_routing_exports_its_routers() -> None:
    routing = importlib.import_module("gateway.routing")

    assert set(PUBLIC["gateway.routing"]) <= set(routing.__all__)
    for name in routing.__all__:
        assert hasattr(routing, name)
