"""The user behind a request of a page that requires login."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


def signed_in(request: HttpRequest) -> User:
    """``request.user`` of a ``login_required`` view: a real user, never anonymous."""
    user = request.user
    if not isinstance(user, User):
        raise TypeError("signed_in() is for login_required views only")
    return user
