"""Device credentials and per-device topic ACLs for the embedded MQTT broker.

Add ``"gateway.devices"`` to ``INSTALLED_APPS``; manage devices in the admin or with
:meth:`Device.objects.create_device`. See docs/mqtt.md.
"""
