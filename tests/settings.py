"""Django settings for the test suite.

The database is PostgreSQL (the machine's, trust auth) under a name unique to
this test process, so concurrent runs and earlier runs never collide; pytest-django
creates ``test_<name>`` and drops it at the end. ``GATEWAY_TEST_DATABASE_URL``
points the suite elsewhere.
"""

import os
from typing import Any

import dj_database_url

SECRET_KEY = "gateway-tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1", "example.com"]

INSTALLED_APPS = [
    # First, so its runserver (HTTP + WebSocket) wins over staticfiles'.
    "gateway",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gateway.devices",
    "gateway.telegram",
    "project.iot",
    "project.dashboard",
    "project.chatbot",
    "tests.example",  # the example chat project: its room page template
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get(
            "GATEWAY_TEST_DATABASE_URL",
            f"postgres://postgres@127.0.0.1:5432/gateway_{os.getpid()}",
        )
    )
}

#: Each alias: BACKEND and, optionally, a CONFIG of any shape (settings_redis.py's).
CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "gateway.layers.InMemoryChannelLayer"}
}
ASGI_APPLICATION = "tests.asgi.application"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
