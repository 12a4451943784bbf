"""What every broker shares: its configuration, the tenant ACL model, its addresses."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol, Self
from urllib.parse import quote

from iiotlab.certs import TlsFiles
from iiotlab.errors import ConfigError
from iiotlab.payloads import MAX_PAYLOAD_BYTES

_FORBIDDEN_TENANT_CHARACTERS = frozenset("/+#\x00")
MQTT_MAX_PAYLOAD_BYTES = 268_435_455  # the largest remaining length MQTT can encode


@dataclass(frozen=True)
class BrokerUser:
    """A broker account. ``tenant=None`` is an administrator with access to every topic."""

    username: str
    password: str
    tenant: str | None

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise ConfigError(
                "invalid MQTT username",
                key="users.username",
                value=self.username,
                expected="a non-empty name without ':'",
            )
        if self.tenant is not None and (
            not self.tenant or _FORBIDDEN_TENANT_CHARACTERS & set(self.tenant)
        ):
            raise ConfigError(
                "invalid tenant",
                key="users.tenant",
                value=self.tenant,
                expected="a non-empty topic level without '/', '+', '#' (or None for admin)",
            )

    @property
    def topic_filter(self) -> str:
        """The one filter this user may publish to and subscribe under."""
        return "#" if self.tenant is None else f"iiot/{self.tenant}/#"


@dataclass(frozen=True)
class BrokerConfig:
    """How to run a broker. ``port=0`` and ``tls_port=0`` pick free ports."""

    host: str = "127.0.0.1"
    port: int = 0
    users: tuple[BrokerUser, ...] = ()
    allow_anonymous: bool | None = None
    tls: TlsFiles | None = None
    tls_port: int | None = None
    plaintext: bool = True
    require_client_cert: bool = False  # mutual TLS: clients need a certificate of tls.ca_file
    # Larger PUBLISH payloads are acknowledged and dropped (MQTT 3.1.1 cannot refuse one);
    # None = no limit. The contract's own limit by default.
    max_message_bytes: int | None = MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        limit = self.max_message_bytes
        if limit is not None and not 1 <= limit <= MQTT_MAX_PAYLOAD_BYTES:
            raise ConfigError(
                "invalid maximum message size",
                key="max_message_bytes",
                value=limit,
                expected=f"a payload size in bytes from 1 to {MQTT_MAX_PAYLOAD_BYTES}, "
                "or None for no limit",
            )
        if self.require_client_cert and self.tls is None:
            raise ConfigError(
                "client certificates are checked on the TLS listener, and there is none",
                key="require_client_cert",
                value=True,
                expected="tls=TlsFiles(...) as well, or require_client_cert=False",
            )
        if not self.plaintext and self.tls is None:
            raise ConfigError(
                "a broker without a plaintext listener needs TLS",
                key="tls",
                value=None,
                expected="TlsFiles (see iiotlab.certs.make_tls_files) when plaintext=False",
            )
        names = [user.username for user in self.users]
        if len(names) != len(set(names)):
            raise ConfigError(
                "duplicate MQTT username", key="users", value=names, expected="unique usernames"
            )

    @property
    def anonymous_allowed(self) -> bool:
        """Anonymous clients are allowed iff configured so, or by default when no users exist."""
        return self.allow_anonymous if self.allow_anonymous is not None else not self.users


class Broker(Protocol):
    """A running MQTT broker (3.1.1) on loopback; see EmbeddedBroker and MosquittoBroker."""

    config: BrokerConfig

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls_port(self) -> int | None: ...
    @property
    def url(self) -> str: ...
    @property
    def tls_url(self) -> str | None: ...
    def url_for(self, user: BrokerUser | None = None, *, tls: bool = False) -> str: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc_info: object) -> None: ...


class BrokerAddressMixin:
    """Addresses derived from the bound ports; ``_port``/``_tls_port`` are set by start()."""

    config: BrokerConfig
    _port: int
    _tls_port: int | None

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        """The plaintext port (0 when there is no plaintext listener)."""
        return self._port

    @property
    def tls_port(self) -> int | None:
        return self._tls_port

    @property
    def url(self) -> str:
        """``mqtt://host:port``; ``mqtts://host:tls_port`` when there is only TLS."""
        if not self.config.plaintext:
            return f"mqtts://{self.host}:{self._tls_port}"
        return f"mqtt://{self.host}:{self._port}"

    @property
    def tls_url(self) -> str | None:
        if self._tls_port is None:
            return None
        return f"mqtts://{self.host}:{self._tls_port}"

    def url_for(self, user: BrokerUser | None = None, *, tls: bool = False) -> str:
        """The URL with ``user``'s credentials, e.g. ``mqtt://alice:pw@127.0.0.1:1883``."""
        if tls or not self.config.plaintext:
            scheme, port = "mqtts", self._tls_port
        else:
            scheme, port = "mqtt", self._port
        credentials = ""
        if user is not None:
            credentials = f"{quote(user.username, safe='')}:{quote(user.password, safe='')}@"
        return f"{scheme}://{credentials}{self.host}:{port}"


def topic_filter_within(requested: str, allowed: str) -> bool:
    """Whether every topic matched by ``requested`` is also matched by ``allowed``.

    A topic name (no wildcards) is a filter matching only itself, so this also answers
    "may this topic be published".
    """
    requested_levels = requested.split("/")
    allowed_levels = allowed.split("/")
    for index, allowed_level in enumerate(allowed_levels):
        if allowed_level == "#":
            return True
        if index >= len(requested_levels):
            return False
        level = requested_levels[index]
        if level == "#" or (allowed_level != "+" and allowed_level != level):
            return False
    return len(requested_levels) == len(allowed_levels)


def pick_free_port(host: str) -> int:
    """A port that was free a moment ago.

    Racy by nature (another process may take it before our server binds); callers retry
    on a clash. Used only for servers that cannot report the port they bound.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
