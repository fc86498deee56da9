"""``MQTT_URL`` parsing for the bridge role: pure, no I/O.

``mqtt://[user[:password]@]host[:port][?options]`` (``mqtts://`` for TLS, default
ports 1883/8883). Options: ``client_id``, ``version`` (``5`` default, or
``3.1.1``), ``keepalive`` (seconds, default 30), ``share`` (a shared-subscription
group: every filter is subscribed as ``$share/<group>/<filter>``, MQTT 5.0 §4.8.2),
``ca``/``cert``/``key`` (PEM files: CA bundle, client certificate and key),
``insecure=1`` (skip hostname verification). The password is never logged:
:meth:`BridgeConfig.safe_url` is what logs show.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_VERSIONS = {"5": "5.0", "5.0": "5.0", "3.1.1": "3.1.1", "4": "3.1.1"}


@dataclass(frozen=True)
class BridgeConfig:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    version: str = "5.0"
    keepalive: int = 30
    share_group: str | None = None
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False

    @classmethod
    def from_url(cls, url: str) -> BridgeConfig:
        """Parse ``url``; :class:`ImproperlyConfigured` naming ``MQTT_URL`` on any error."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ImproperlyConfigured(f"MQTT_URL must start with mqtt:// or mqtts://, not {url!r}")
        if not parts.hostname:
            raise ImproperlyConfigured("MQTT_URL has no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ImproperlyConfigured("MQTT_URL has an invalid port") from None
        options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(options) - {
            "client_id",
            "version",
            "keepalive",
            "share",
            "ca",
            "cert",
            "key",
            "insecure",
        }
        if unknown:
            raise ImproperlyConfigured(
                f"MQTT_URL has unknown option(s): {', '.join(sorted(unknown))}"
            )
        version = _VERSIONS.get(options.get("version", "5"))
        if version is None:
            raise ImproperlyConfigured("MQTT_URL version must be 5 or 3.1.1")
        try:
            keepalive = int(options.get("keepalive", "30"))
        except ValueError:
            raise ImproperlyConfigured("MQTT_URL keepalive must be a number of seconds") from None
        if ("cert" in options) != ("key" in options):
            raise ImproperlyConfigured("MQTT_URL needs both cert and key for a client certificate")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls or "ca" in options or "cert" in options,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            client_id=options.get("client_id"),
            version=version,
            keepalive=keepalive,
            share_group=options.get("share"),
            ca_certs=options.get("ca"),
            certfile=options.get("cert"),
            keyfile=options.get("key"),
            insecure=options.get("insecure") in ("1", "true", "yes"),
        )

    def safe_url(self) -> str:
        """The broker address for logs: never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
