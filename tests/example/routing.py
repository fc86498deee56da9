from django.urls import re_path

from tests.example import consumers

# django-stubs types re_path() for views only; URLRouter takes ASGI applications.
websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", consumers.ChatConsumer.as_asgi()),  # type: ignore[arg-type]
]
