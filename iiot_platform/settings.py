"""Settings of the platform: where the broker is, where data goes, who may log in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from iiotlab.errors import ConfigError
from iiotlab.payloads import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES

Role = Literal["student", "instructor", "admin"]
ROLES: tuple[Role, ...] = ("student", "instructor", "admin")
StoreKind = Literal["sqlite", "influx"]


@dataclass(frozen=True)
class ApiToken:
    """A bearer token. Students are bound to one tenant; instructors and admins see all."""

    token: str
    role: Role
    tenant: str | None = None
    name: str = ""


@dataclass(frozen=True)
class PlatformSettings:
    """Everything `create_app` needs; docs/platform.md documents every field."""

    broker_url: str = "mqtt://127.0.0.1:1883"
    broker_ca_file: Path | None = None
    data_dir: Path = field(default_factory=lambda: Path.home() / ".iiotlab" / "platform")
    store: StoreKind = "sqlite"
    influx_url: str | None = None
    influx_token: str | None = None
    influx_org: str = "iiotlab"
    influx_bucket: str = "iiotlab"
    auth_enabled: bool = False
    tokens: tuple[ApiToken, ...] = ()
    default_tenant: str = "demo"
    client_id: str = "iiot-platform"
    subscribe_filter: str = "iiot/#"
    batch_size: int = 2000
    queue_size: int = 50_000
    stale_check_interval_s: float = 1.0
    mqtt_enabled: bool = True
    # a persistent session (clean session off): what is published while the platform is
    # down waits in the broker (up to its queue limit) and arrives when it is back
    mqtt_persistent_session: bool = False
    # Limits against hostile data and hostile neighbours; docs/platform.md lists each.
    queue_bytes: int = 64 * 1024 * 1024
    max_message_bytes: int = MAX_PAYLOAD_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    ingest_rate_per_tenant: float = 2000.0
    ingest_burst_per_tenant: int = 20_000
    dead_letter_limit: int = 50_000
    dead_letter_tenant_limit: int = 1000
    dead_letter_payload_bytes: int = 16 * 1024
    dead_letter_page_bytes: int = 256 * 1024
    max_series_points: int = 10_000
    health_window_s: float = 300.0

    def __post_init__(self) -> None:
        for name in LIMITS:
            if getattr(self, name) < 0:
                raise ConfigError(
                    "a limit cannot be negative",
                    key=f"{name} ({LIMITS[name][0]})",
                    value=getattr(self, name),
                    expected="0 or more",
                )

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, **overrides: object
    ) -> PlatformSettings:
        """Read IIOTLAB_PLATFORM_* and the shared IIOTLAB_* variables; overrides win."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        if env.get("IIOTLAB_MQTT_URL"):
            values["broker_url"] = env["IIOTLAB_MQTT_URL"]
        if env.get("IIOTLAB_MQTT_CA"):
            values["broker_ca_file"] = Path(env["IIOTLAB_MQTT_CA"])
        if env.get("IIOTLAB_DATA_DIR"):
            values["data_dir"] = Path(env["IIOTLAB_DATA_DIR"]) / "platform"
        if env.get("IIOTLAB_INFLUX_URL"):
            values["store"] = "influx"
            values["influx_url"] = env["IIOTLAB_INFLUX_URL"]
        for key, name in (
            ("influx_token", "IIOTLAB_INFLUX_TOKEN"),
            ("influx_org", "IIOTLAB_INFLUX_ORG"),
            ("influx_bucket", "IIOTLAB_INFLUX_BUCKET"),
        ):
            if env.get(name):
                values[key] = env[name]
        store = env.get("IIOTLAB_PLATFORM_STORE")
        if store:
            if store not in ("sqlite", "influx"):
                raise ConfigError(
                    "unknown store",
                    key="IIOTLAB_PLATFORM_STORE",
                    value=store,
                    expected="sqlite or influx",
                )
            values["store"] = store
        tokens_file = env.get("IIOTLAB_PLATFORM_TOKENS")
        if tokens_file:
            values["tokens"] = load_tokens(Path(tokens_file))
            values["auth_enabled"] = True
        if env.get("IIOTLAB_PLATFORM_AUTH", "").lower() in ("1", "true", "on", "yes"):
            values["auth_enabled"] = True
        session = env.get("IIOTLAB_PLATFORM_PERSISTENT_SESSION", "").lower()
        if session in ("1", "true", "on", "yes"):
            values["mqtt_persistent_session"] = True
        values.update(limits_from_env(env))
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


# Each limit, the variable that sets it, and its type (docs/platform.md, "Limits").
LIMITS: dict[str, tuple[str, type[int] | type[float]]] = {
    "batch_size": ("IIOTLAB_PLATFORM_BATCH_SIZE", int),
    "queue_size": ("IIOTLAB_PLATFORM_QUEUE_SIZE", int),
    "queue_bytes": ("IIOTLAB_PLATFORM_QUEUE_BYTES", int),
    "max_message_bytes": ("IIOTLAB_PLATFORM_MAX_MESSAGE_BYTES", int),
    "max_json_depth": ("IIOTLAB_PLATFORM_MAX_JSON_DEPTH", int),
    "ingest_rate_per_tenant": ("IIOTLAB_PLATFORM_INGEST_RATE", float),
    "ingest_burst_per_tenant": ("IIOTLAB_PLATFORM_INGEST_BURST", int),
    "dead_letter_limit": ("IIOTLAB_PLATFORM_DEAD_LETTER_LIMIT", int),
    "dead_letter_tenant_limit": ("IIOTLAB_PLATFORM_DEAD_LETTER_TENANT_LIMIT", int),
    "dead_letter_payload_bytes": ("IIOTLAB_PLATFORM_DEAD_LETTER_PAYLOAD_BYTES", int),
    "dead_letter_page_bytes": ("IIOTLAB_PLATFORM_DEAD_LETTER_PAGE_BYTES", int),
    "max_series_points": ("IIOTLAB_PLATFORM_MAX_SERIES_POINTS", int),
    "health_window_s": ("IIOTLAB_PLATFORM_HEALTH_WINDOW_S", float),
}


def limits_from_env(environ: dict[str, str] | None = None) -> dict[str, object]:
    """The limits set by IIOTLAB_PLATFORM_* variables, as PlatformSettings fields."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for field_name, (variable, kind) in LIMITS.items():
        text = env.get(variable, "").strip()
        if not text:
            continue
        try:
            value = kind(text.replace("_", ""))
        except ValueError:
            raise ConfigError(
                "not a number",
                key=variable,
                value=text,
                expected="an integer" if kind is int else "a number",
            ) from None
        values[field_name] = value
    return values


def load_tokens(path: Path) -> tuple[ApiToken, ...]:
    """Read a tokens file: one `token role [tenant] [name]` per line, `#` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError("tokens file not found", file=path) from None
    tokens: list[ApiToken] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) < 2 or parts[1] not in ROLES:
            raise ConfigError(
                "bad token line",
                file=path,
                line=number,
                value=text,
                expected="'<token> <student|instructor|admin> [tenant] [name]'",
            )
        role: Role = parts[1]  # type: ignore[assignment]
        tenant = parts[2] if len(parts) > 2 and parts[2] != "-" else None
        if role == "student" and tenant is None:
            raise ConfigError(
                "a student token needs a tenant",
                file=path,
                line=number,
                value=text,
                expected="'<token> student <tenant>'",
            )
        tokens.append(ApiToken(parts[0], role, tenant, " ".join(parts[3:])))
    return tuple(tokens)
