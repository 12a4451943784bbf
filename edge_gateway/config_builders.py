"""Build a GatewayConfig from a datasheet, or from the gateway-under-test environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from edge_gateway.config import (
    BrokerConfig,
    BufferConfig,
    Deadband,
    GatewayConfig,
    ModbusSourceConfig,
    OpcuaSourceConfig,
    SourceConfig,
    TagConfig,
)
from iiotlab.datasheet import Datasheet, TagSpec, load_datasheet
from iiotlab.errors import ConfigError
from iiotlab.gateway_env import GatewayEnvironment

ENV_VARIABLES = GatewayEnvironment.variables()


def config_from_datasheet(
    datasheet: Datasheet,
    *,
    broker_url: str = "mqtt://127.0.0.1:1883",
    tenant: str | None = None,
    device: str | None = None,
    modbus_host: str | None = None,
    modbus_port: int | None = None,
    opcua_url: str | None = None,
    prefer: Literal["modbus", "opcua"] = "modbus",
    buffer_path: Path | None = None,
    ca_file: Path | None = None,
) -> GatewayConfig:
    """One source per protocol; each tag read over `prefer` when the datasheet allows."""
    sources: dict[str, SourceConfig] = {}
    host = modbus_host or datasheet.modbus.host or "127.0.0.1"
    port = modbus_port or datasheet.modbus.port or 5020
    sources["plc"] = ModbusSourceConfig(host=host, port=port, unit_id=datasheet.modbus.unit_id)
    endpoint = opcua_url or datasheet.opcua.endpoint
    if endpoint:
        sources["opcua"] = OpcuaSourceConfig(endpoint=endpoint)
    tags = [
        tag
        for spec in datasheet.tags
        if (tag := _tag_from_spec(spec, prefer, has_opcua="opcua" in sources)) is not None
    ]
    used = {tag.source for tag in tags}
    return GatewayConfig(
        tenant=tenant or datasheet.student or "demo",
        device=device or datasheet.device or f"{datasheet.plant}-1",
        sources={name: source for name, source in sources.items() if name in used},
        tags=tags,
        broker=BrokerConfig(url=broker_url, ca_file=ca_file),
        buffer=BufferConfig(path=buffer_path or Path("gateway-buffer.db")),
    )


def _tag_from_spec(spec: TagSpec, prefer: str, *, has_opcua: bool) -> TagConfig | None:
    common: dict[str, Any] = {
        "name": spec.name,
        "writable": spec.access == "rw",
        "range": spec.range,
    }
    use_opcua = spec.opcua is not None and has_opcua and (prefer == "opcua" or not spec.modbus)
    if use_opcua and spec.opcua is not None:
        return TagConfig(source="opcua", node_id=spec.opcua.node_id, **common)
    if spec.modbus is None:
        return None
    address = spec.modbus
    return TagConfig(
        source="plc",
        table=address.table,
        address=address.address,
        type=address.type,
        word_order=address.word_order,
        scale=address.scale,
        offset=address.offset,
        length=address.length,
        bit=address.bit,
        **common,
    )


def config_from_env(environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """The gateway-under-test variables of DESIGN.md, and nothing else."""
    variables = GatewayEnvironment.from_environ(os.environ if environ is None else environ)
    datasheet = load_datasheet(variables.datasheet)
    state_dir = variables.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    config = config_from_datasheet(
        datasheet,
        broker_url=variables.mqtt_url,
        tenant=variables.tenant,
        device=variables.device,
        modbus_host=variables.modbus_host,
        modbus_port=variables.modbus_port,
        opcua_url=variables.opcua_url,
        # a lab that serves no Modbus (no IIOTLAB_MODBUS_*) is read over its OPC UA server
        prefer="opcua" if variables.modbus_port is None and variables.opcua_url else "modbus",
        buffer_path=state_dir / "gateway-buffer.db",
        ca_file=variables.mqtt_ca,
    )
    cert, key = variables.mqtt_cert, variables.mqtt_key
    if not cert and not key:
        return config
    try:
        broker = BrokerConfig.model_validate(
            {**config.broker.model_dump(), "cert_file": cert, "key_file": key}
        )
    except ValidationError as error:
        raise ConfigError(
            error.errors()[0]["msg"].removeprefix("Value error, "),
            key="IIOTLAB_MQTT_CERT" if cert else "IIOTLAB_MQTT_KEY",
            value=cert or key,
            expected="IIOTLAB_MQTT_CERT and IIOTLAB_MQTT_KEY together, with an mqtts:// URL",
        ) from None
    return config.model_copy(update={"broker": broker})


def config_to_yaml(config: GatewayConfig) -> str:
    """YAML a user can edit: defaults left out except the ones worth seeing."""
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["sources"] = {
        name: {"kind": source.kind, **source.model_dump(mode="json", exclude_defaults=True)}
        for name, source in config.sources.items()
    }
    data.setdefault("tenant", config.tenant)
    data["heartbeat_s"] = config.heartbeat_s
    data["buffer"] = config.buffer.model_dump(mode="json")
    data["broker"] = config.broker.model_dump(mode="json", exclude_none=True)
    for tag in data.get("tags", []):
        if "range" in tag:
            tag["range"] = list(tag["range"])
    ordered = {key: data[key] for key in _KEY_ORDER if key in data}
    header = (
        "# iiotlab gateway configuration; every key is described in docs/gateway.md\n"
        "# Run it with: iiotlab gateway run --config <this file>\n"
    )
    return header + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


_KEY_ORDER = (
    "tenant",
    "device",
    "heartbeat_s",
    "metrics_port",
    "broker",
    "buffer",
    "sources",
    "poll_groups",
    "tags",
    "transforms",
)


def broker_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 8883 if parts.scheme == "mqtts" else 1883
    return parts.hostname or "127.0.0.1", parts.port or default


def with_overrides(
    config: GatewayConfig, *, heartbeat_s: float | None, deadbands: Sequence[str]
) -> GatewayConfig:
    """The config with `--heartbeat` and `--deadband TAG=VALUE[%]` applied."""
    if heartbeat_s is not None and not (heartbeat_s > 0 and math.isfinite(heartbeat_s)):
        raise ConfigError(
            "not a positive number of seconds",
            key="--heartbeat",
            value=heartbeat_s,
            expected="seconds > 0, e.g. 5",
        )
    rules = dict(parse_deadband(text) for text in deadbands)
    known = {tag.name for tag in config.tags}
    for name in rules:
        if name not in known:
            raise ConfigError(
                f"no tag {name!r} in this config",
                key="--deadband",
                value=name,
                expected="one of " + ", ".join(sorted(known)),
            )
    tags = [
        tag.model_copy(update={"deadband": rules[tag.name]}) if tag.name in rules else tag
        for tag in config.tags
    ]
    update: dict[str, object] = {"tags": tags}
    if heartbeat_s is not None:
        update["heartbeat_s"] = heartbeat_s
    return config.model_copy(update=update)


def parse_deadband(text: str) -> tuple[str, Deadband]:
    """`level=0.02` (engineering units) or `level=1%` (of the tag's range)."""
    name, sep, amount = text.partition("=")
    percent = amount.strip().endswith("%")
    number = amount.strip().rstrip("%").strip()
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not sep or not name.strip() or not math.isfinite(value) or value < 0:
        raise ConfigError(
            "not a deadband",
            key="--deadband",
            value=text,
            expected="TAG=VALUE or TAG=VALUE% with VALUE >= 0, e.g. level=0.02 or level=1%",
        )
    if percent and value > 100:
        raise ConfigError(
            "a percent deadband is at most 100", key="--deadband", value=text, expected="0-100%"
        )
    return name.strip(), Deadband(percent=value) if percent else Deadband(absolute=value)
