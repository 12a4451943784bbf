"""The gateway-under-test variables (DESIGN.md): one model, written by the grader, read by
any gateway (ours through `edge_gateway.config_builders.config_from_env`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iiotlab.errors import ConfigError

PREFIX = "IIOTLAB_"


class GatewayEnvironment(BaseModel):
    """Each field is the variable IIOTLAB_<FIELD NAME IN UPPER CASE>."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    datasheet: Path = Field(description="the student's datasheet JSON")
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883", description="mqtt://user:pass@host:port or mqtts://"
    )
    mqtt_ca: Path | None = Field(default=None, description="CA file when TLS")
    mqtt_cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    mqtt_key: Path | None = Field(default=None, description="client key (mutual TLS)")
    tenant: str | None = Field(default=None, description="the student id")
    device: str | None = None
    modbus_host: str | None = None
    modbus_port: int | None = Field(default=None, ge=1, le=65535)
    opcua_url: str | None = None
    line: Path | None = Field(
        default=None, description="multi-plant labs: the line manifest JSON (docs/contract.md)"
    )
    state_dir: Path = Field(default=Path("."), description="survives a restart within a run")
    proxy_port: int | None = Field(
        default=None, ge=1, le=65535, description="modbus_proxy labs: where to listen"
    )
    platform_url: str | None = Field(default=None, description="platform labs")
    tap_url: str | None = Field(
        default=None, description="modbus_tap labs: tcp://host:port of the Modbus tap's feed"
    )
    platform_token: str | None = Field(default=None, description="platform labs: bearer token")

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        return tuple(PREFIX + name.upper() for name in cls.model_fields)

    def to_environ(self) -> dict[str, str]:
        """The variables that are set (a None field is left out)."""
        return {
            PREFIX + name.upper(): str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GatewayEnvironment:
        """Read the variables; an empty one counts as unset. Errors name the variable."""
        values = {
            name: environ[PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(PREFIX + name.upper())
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "datasheet"
            field, variable = cls.model_fields.get(name), PREFIX + name.upper()
            missing = first["type"] == "missing"
            raise ConfigError(
                f"{variable} is not set" if missing else f"{variable}: {first['msg']}",
                key=variable,
                value=first.get("input") if first["type"] != "missing" else None,
                expected=(field.description if field and field.description else None),
            ) from None
