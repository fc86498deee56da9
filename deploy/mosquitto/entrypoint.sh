#!/bin/sh
# Start Mosquitto with the gateway's MQTT user (re)set from the environment. Devices
# are added to the same password file, kept in the mosquitto-data volume:
#   docker compose exec mosquitto mosquitto_passwd -b /mosquitto/data/passwd <device id> <secret>
#   docker compose kill -s HUP mosquitto
set -eu
passwd=/mosquitto/data/passwd
: "${MQTT_GATEWAY_PASSWORD:?MQTT_GATEWAY_PASSWORD is not set (see .env.example)}"
umask 077
touch "$passwd"
mosquitto_passwd -b "$passwd" gateway "$MQTT_GATEWAY_PASSWORD"
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
