"""Settings for the runserver test: the test settings with ``gateway`` listed before
``django.contrib.staticfiles`` (so its runserver wins), DEBUG on (static files), SQLite
(no per-process PostgreSQL database in a subprocess) and a tiny ASGI application."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = ["gateway", *[app for app in INSTALLED_APPS if app != "gateway"]]  # noqa: F405
DEBUG = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STATIC_URL = "/static/"
ASGI_APPLICATION = "tests.protocols.websocket.runserver_app.application"
