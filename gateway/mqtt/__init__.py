"""MQTT's ASGI vocabulary (docs/specs/mqtt.md).

:mod:`gateway.mqtt.events` defines the ``mqtt`` scope and every event and message of
the spec once, with their builders and parsers, for the interface server
(:mod:`protocols.mqtt`), the generic consumers (:mod:`gateway.generic.mqtt`) and the
test communicator (:mod:`gateway.testing.mqtt`).
"""
