"""The chat room page: the HTML side of the WebSocket room (as in the Channels tutorial)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def room(request: HttpRequest, room_name: str) -> HttpResponse:
    return render(request, "chat/room.html", {"room_name": room_name})
