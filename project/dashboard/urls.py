"""The dashboard's pages (namespace ``dashboard``), mounted at the site's root."""

from django.urls import path

from project.dashboard import chats, devices, fleet, views

app_name = "dashboard"

urlpatterns = [
    path("", fleet.fleet, name="fleet"),
    path("devices/add/", fleet.add_device, name="add-device"),
    path("devices/<str:device_id>/", devices.device, name="device"),
    path("devices/<str:device_id>/credentials/", devices.reset, name="reset-credentials"),
    path("telegram/", chats.chats, name="chats"),
    path("telegram/link/", chats.new_link_code, name="link-code"),
    path("telegram/<int:pk>/unlink/", chats.unlink, name="unlink-chat"),
    path("traffic/", views.traffic, name="traffic"),
    path("health/", views.health, name="health"),
]
