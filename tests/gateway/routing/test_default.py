import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from gateway.routing import get_default_application
from tests.asgi import application


def test_loads_asgi_application() -> None:
    assert get_default_application() is application


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (None, "ASGI_APPLICATION is not set"),
        ("application", "not a dotted path"),
        ("tests.no_such_module.application", "cannot import module 'tests.no_such_module'"),
        ("tests.asgi.no_such_name", "module 'tests.asgi' has no attribute 'no_such_name'"),
    ],
)
def test_misconfiguration_is_improperly_configured(setting: str | None, message: str) -> None:
    with (
        override_settings(ASGI_APPLICATION=setting),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        get_default_application()
