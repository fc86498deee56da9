"""Test glue for channels_postgres' tests, written for bench/thirdparty/run.py.

test_core.py calls ``django.setup()`` at import, so the settings module is named
here, before it is collected; the scratch database is created and migrated once.
"""

import os

import django
import psycopg
from django.conf import settings
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def pytest_configure() -> None:
    django.setup()
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        dbname="postgres",
        autocommit=True,
    ) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{database["NAME"]}"')
    call_command("migrate", "channels_postgres", verbosity=0)
