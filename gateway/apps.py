"""The Django app for gateway (label ``gateway``), as ``channels.apps`` is for Channels.

Listing ``"gateway"`` in ``INSTALLED_APPS`` makes its management commands
(``runworker``, ``runserver``) available to ``manage.py``.
"""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    label = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # gateway.db follows every database connection from the first one opened (a
        # startup hook's, too), so consumers know when none is open (no thread hop).
        import gateway.db  # noqa: F401
