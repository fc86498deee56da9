"""Settings for channels_postgres' tests (its sdist ships its test_core.py without them).

Written for bench/thirdparty/run.py. channels_postgres' README: its tables come from
``migrate channels_postgres``, and the layer reads ``DATABASES["channels_postgres"]``.
Both aliases name one scratch database on the PostgreSQL of scripts/services
(127.0.0.1:5432, the ``postgres`` role, trust authentication); the conftest beside
this file creates it and runs the migrations.
"""

SECRET_KEY = "channels-postgres-tests"
USE_TZ = True
INSTALLED_APPS = ["channels", "channels_postgres"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_DATABASE = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "gateway_thirdparty_channels_postgres",
    "USER": "postgres",
    "HOST": "127.0.0.1",
    "PORT": "5432",
}
DATABASES = {"default": dict(_DATABASE), "channels_postgres": dict(_DATABASE)}
