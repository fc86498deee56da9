"""Shared fixtures: service URLs and unique names so tests never collide."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for Redis key prefixes, topics and groups."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def mosquitto_url() -> str:
    return os.environ.get("GATEWAY_TEST_MOSQUITTO_URL", "mqtt://127.0.0.1:1883")
