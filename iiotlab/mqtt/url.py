"""Parsing of broker URLs: ``mqtt://user:pass@host:port`` and ``mqtts://...``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from iiotlab.errors import ConfigError

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_EXPECTED = "mqtt://[user:password@]host[:port] or mqtts://... (percent-encode ':' '@' '/')"


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and as whom to connect. ``tls`` is true for ``mqtts://``."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def display(self) -> str:
        """The URL without the password, safe for messages and logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse a broker URL; ConfigError names the bad part."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigError(
            f"invalid MQTT URL ({error})", key="url", value=_redact(url), expected=_EXPECTED
        ) from error
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(
            "unsupported MQTT URL scheme", key="url", value=_redact(url), expected=_EXPECTED
        )
    if not parts.hostname:
        raise ConfigError("MQTT URL has no host", key="url", value=_redact(url), expected=_EXPECTED)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            "MQTT URL must not have a path or query",
            key="url",
            value=_redact(url),
            expected=_EXPECTED,
        )
    return MqttEndpoint(
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _redact(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    credentials, _, address = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{address}"
