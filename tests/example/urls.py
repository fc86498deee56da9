"""HTTP routes of the example chat project (its WebSocket routes are in routing.py)."""

from django.urls import re_path

from tests.example import views

# The same room names the WebSocket route accepts (see routing.py).
urlpatterns = [re_path(r"^(?P<room_name>\w+)/$", views.room, name="room")]
