"""tests.settings with the example chat project on the Redis channel layer.

For the example's processes started by ``test_processes.py``: every process reads
the same Redis (``GATEWAY_TEST_REDIS_URL``) under the same key prefix
(``GATEWAY_TEST_REDIS_PREFIX``, unique per test) and the same test database
(``GATEWAY_TEST_DATABASE_URL``, read by tests.settings).
"""

import os

from tests.settings import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "gateway.layers.redis.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("GATEWAY_TEST_REDIS_PREFIX", "gateway-example"),
        },
    }
}
ASGI_APPLICATION = "tests.example.asgi.application"
