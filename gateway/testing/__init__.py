"""Test tools for gateway applications: what tests import, in one place.

Communicators drive one application instance without a server (``pytest`` and
Django test cases alike); the protocol modules add theirs here.
``ChannelsLiveServerTestCase`` runs the project on gateway's own web server.
"""

from gateway.testing.application import ApplicationCommunicator
from gateway.testing.http import HttpCommunicator
from gateway.testing.live import ChannelsLiveServerTestCase
from gateway.testing.mqtt import MqttCommunicator
from gateway.testing.telegram import TelegramCommunicator
from gateway.testing.websocket import WebsocketCommunicator

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "HttpCommunicator",
    "MqttCommunicator",
    "TelegramCommunicator",
    "WebsocketCommunicator",
]
