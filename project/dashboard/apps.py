from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The live operations dashboard: fleet, devices, traffic and health pages."""

    name = "project.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
