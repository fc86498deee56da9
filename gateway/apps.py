"""The Django app for gateway (label ``gateway``), as ``channels.apps`` is for Channels.

Listing ``"gateway"`` in ``INSTALLED_APPS`` makes its management commands
(``runworker``, ``runserver``) available to ``manage.py``.
"""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    label = "gateway"
    verbose_name = "Gateway"
