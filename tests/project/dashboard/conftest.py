"""The dashboard under the test settings: the project's URLs and login settings, users."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def project_urls(settings: Any) -> None:
    """``project.urls`` and the login settings ``project.settings`` defines."""
    settings.ROOT_URLCONF = "project.urls"
    settings.LOGIN_URL = "login"
    settings.LOGIN_REDIRECT_URL = "/"
    settings.LOGOUT_REDIRECT_URL = "login"


@pytest.fixture
def staff(db: None) -> Any:
    return get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)


@pytest.fixture
def member(db: None) -> Any:
    """A logged-in person who is not staff."""
    return get_user_model().objects.create_user("bob", password=PASSWORD)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client
