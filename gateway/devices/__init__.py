"""Device credentials and per-device topic ACLs for the embedded MQTT broker.

Add ``"gateway.devices"`` to ``INSTALLED_APPS``; manage devices in the admin or with
:meth:`Device.objects.create_device`, giving them tokens from
:func:`gateway.devices.credentials.generate_token`. Logins are checked by
:class:`gateway.devices.authenticator.DeviceAuthenticator`. See docs/mqtt.md and
docs/security.md.
"""
