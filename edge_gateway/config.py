"""The gateway's configuration: one YAML file, validated by these pydantic models.

Every key is documented in docs/gateway.md. Unknown keys are errors (`extra="forbid"`);
`load_gateway_config` (config_loader.py) turns a validation error into a ConfigError that
names the file, the line, the key, the bad value and the expected form.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

if TYPE_CHECKING:
    from iiotlab.datasheet import Datasheet

RegisterTable = Literal["holding", "input", "coil", "discrete"]
TagType = Literal[
    "bool", "int16", "uint16", "bits16", "int32", "uint32", "float32", "float64", "string"
]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
SecurityPolicy = Literal["None", "Basic256Sha256"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
OverflowPolicy = Literal["drop_oldest", "drop_newest"]
TransformKind = Literal["moving_average", "min", "max", "mean", "rate_of_change", "rms"]
Segment = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusSourceConfig(_Model):
    kind: Literal["modbus"] = "modbus"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)
    max_gap: int = Field(
        default=0,
        ge=0,
        le=124,
        description="unmapped registers/bits a single read may bridge (0: never bridge)",
    )
    max_registers: int = Field(default=125, ge=1, le=125)
    max_bits: int = Field(default=2000, ge=1, le=2000)
    pipeline: int = Field(
        default=1,
        ge=1,
        le=64,
        description="block reads in flight at once on the connection; more than 1 only "
        "for devices that answer pipelined requests (pymodbus's server does not)",
    )
    reconnect_max_s: float = Field(default=5.0, gt=0, description="longest retry delay")


class OpcuaSourceConfig(_Model):
    kind: Literal["opcua"] = "opcua"
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    security_policy: SecurityPolicy = "None"
    security_mode: SecurityMode = "None"
    username: str | None = None
    password: str | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    certificate_dir: Path | None = Field(
        default=None, description="where a generated client certificate is kept"
    )
    sampling_interval_ms: float = Field(default=500.0, ge=0)
    publishing_interval_ms: float = Field(default=500.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)
    reconnect_max_s: float = Field(default=5.0, gt=0, description="longest retry delay")

    @model_validator(mode="after")
    def _secure_pairs(self) -> OpcuaSourceConfig:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(
                "security_policy and security_mode must both be None or both be set "
                "(Basic256Sha256 with Sign or SignAndEncrypt)"
            )
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        return self


SourceConfig = Annotated[ModbusSourceConfig | OpcuaSourceConfig, Field(discriminator="kind")]


class Deadband(_Model):
    """Exactly one of absolute (engineering units) or percent (of the tag's range)."""

    absolute: float | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> Deadband:
        if (self.absolute is None) == (self.percent is None):
            raise ValueError("a deadband has exactly one of 'absolute' or 'percent'")
        return self


class TagConfig(_Model):
    name: Segment
    source: str
    # Modbus
    table: RegisterTable | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    type: TagType = "float32"
    word_order: WordOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int | None = Field(default=None, ge=1, le=125, description="registers of a string")
    bit: int | None = Field(
        default=None, ge=0, le=15, description="bit of a bits16 word (none: the whole word)"
    )
    # OPC UA
    node_id: str | None = None
    # both
    deadband: Deadband | None = None
    poll_group: str | None = None
    writable: bool = False
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _shape(self) -> TagConfig:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.type == "string" and self.length is None:
            raise ValueError("a string tag needs 'length' (registers, 2 characters each)")
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} tag has type bool, not {self.type}")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError("range is [low, high] with low <= high")
        return self


class BrokerConfig(_Model):
    url: str = Field(default="mqtt://127.0.0.1:1883", pattern=r"^mqtts?://")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    inflight: int = Field(
        default=1000, ge=1, le=10000, description="publishes awaiting PUBACK at once"
    )

    @model_validator(mode="after")
    def _client_certificate(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together (a client certificate and its key)"
            )
        if self.cert_file is not None and not self.url.startswith("mqtts://"):
            raise ValueError("a client certificate needs TLS: use an mqtts:// url")
        return self


class BufferConfig(_Model):
    path: Path = Path("gateway-buffer.db")
    capacity: int = Field(default=1_000_000, ge=1)
    overflow: OverflowPolicy = "drop_oldest"


class TransformConfig(_Model):
    name: Segment
    tag: str
    kind: TransformKind
    window_s: float = Field(default=10.0, gt=0)


class GatewayConfig(_Model):
    tenant: Segment = "demo"
    device: Segment
    sources: dict[str, SourceConfig]
    tags: list[TagConfig]
    poll_groups: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="group name -> poll interval in seconds"
    )
    broker: BrokerConfig = BrokerConfig()
    buffer: BufferConfig = BufferConfig()
    heartbeat_s: float = Field(default=30.0, gt=0)
    transforms: list[TransformConfig] = Field(default_factory=list)
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="None: off; 0: pick a free port"
    )
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> GatewayConfig:
        if info.context and info.context.get("defer_references"):
            return self  # the YAML loader checks them itself, to report the line
        for _, message, _ in reference_problems(self):
            raise ValueError(message)
        return self

    def tag(self, name: str) -> TagConfig:
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(name)

    @classmethod
    def from_datasheet(
        cls,
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
    ) -> GatewayConfig:
        """A working config for every tag of a datasheet (see config_builders.py)."""
        from edge_gateway.config_builders import config_from_datasheet

        return config_from_datasheet(
            datasheet,
            broker_url=broker_url,
            tenant=tenant,
            device=device,
            modbus_host=modbus_host,
            modbus_port=modbus_port,
            opcua_url=opcua_url,
            prefer=prefer,
            buffer_path=buffer_path,
        )


Location = tuple[str | int, ...]


def reference_problems(config: GatewayConfig) -> Iterator[tuple[Location, str, object]]:
    """Cross-references a single model cannot check: (location, message, bad value)."""
    names: set[str] = set()
    for index, tag in enumerate(config.tags):
        where: Location = ("tags", index)
        source = config.sources.get(tag.source)
        if source is None:
            known = ", ".join(sorted(config.sources)) or "none defined"
            yield (*where, "source"), f"source is not defined (defined: {known})", tag.source
        elif isinstance(source, ModbusSourceConfig):
            if tag.table is None or tag.address is None:
                yield where, "a tag of a Modbus source needs 'table' and 'address'", tag.name
        elif tag.node_id is None:
            yield where, "a tag of an OPC UA source needs 'node_id'", tag.name
        if tag.poll_group is not None and tag.poll_group not in config.poll_groups:
            yield (*where, "poll_group"), "poll group is not defined in poll_groups", tag.poll_group
        if tag.name in names:
            yield (*where, "name"), "tag name appears twice", tag.name
        names.add(tag.name)
    for index, transform in enumerate(config.transforms):
        if transform.tag not in names:
            yield ("transforms", index, "tag"), "transform of an unknown tag", transform.tag
        if transform.name in names:
            yield ("transforms", index, "name"), "name is already a tag name", transform.name
        names.add(transform.name)
