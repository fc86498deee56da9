"""gateway.testing.live: ChannelsLiveServerTestCase serves the example project for real."""

from __future__ import annotations

import json
from urllib.request import urlopen

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from websockets.sync.client import connect

from gateway.testing import ChannelsLiveServerTestCase

TIMEOUT = 5


class ExampleProjectLiveTests(ChannelsLiveServerTestCase):
    """The example chat project (``ASGI_APPLICATION``) over real sockets."""

    def test_http_goes_to_django(self) -> None:
        with urlopen(f"{self.live_server_url}/admin/login/", timeout=TIMEOUT) as response:
            assert response.status == 200
            assert b"csrfmiddlewaretoken" in response.read()

    def test_a_signed_in_user_chats_over_a_websocket(self) -> None:
        user = User.objects.create_user("ada", password="pw")
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        with connect(
            f"{self.live_server_ws_url}/ws/chat/lobby/",
            origin=self.live_server_url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ) as websocket:
            websocket.send(json.dumps({"message": "hello, live"}))
            reply = json.loads(websocket.recv(timeout=TIMEOUT))
        assert reply == {"username": "ada", "message": "hello, live"}
