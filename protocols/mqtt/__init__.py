"""The MQTT interface server (docs/specs/mqtt.md): bridge to a broker, or embed one."""
