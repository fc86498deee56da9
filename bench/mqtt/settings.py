"""Django settings for the MQTT benchmark subjects (no database is used).

``BENCH_LAYER``: ``memory`` (gateway's in-memory layer), ``redis`` (gateway's Redis
layer under a prefix unique to the run) or ``none`` (mqttasgi, which needs none).
"""

import os

SECRET_KEY = "bench-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES: dict[str, object] = {}
USE_TZ = True

_layer = os.environ.get("BENCH_LAYER", "memory")
if _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
                "prefix": os.environ.get("BENCH_PREFIX", "bench-mqtt"),
                "capacity": 100_000,
            },
        }
    }
elif _layer == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "gateway.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {}
