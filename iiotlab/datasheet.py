"""The datasheet contract (simulator -> student, gateway, grader): JSON models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iiotlab.errors import ConfigError

RegisterTable = Literal["holding", "input", "coil", "discrete"]
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "string", "bits16"
]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Access = Literal["r", "rw"]
# Device identification objects are printable ASCII on the wire (one length byte each).
IdentityText = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[ -~]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ModbusTagAddress(_Model):
    table: RegisterTable
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: DataType
    word_order: WordOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int | None = Field(
        default=None, description="registers of a string tag (2 characters each)"
    )
    bit: int | None = Field(
        default=None, ge=0, le=15, description="bit of a bits16 status word (0 = LSB)"
    )


class OpcuaTagNode(_Model):
    node_id: str
    browse_name: str | None = None


class TagSpec(_Model):
    name: str
    unit: str = ""
    description: str = ""
    access: Access = "r"
    range: tuple[float, float] | None = None
    tolerance: float | None = Field(
        default=None, description="absolute tolerance a grader allows on this tag"
    )
    modbus: ModbusTagAddress | None = None
    opcua: OpcuaTagNode | None = None


class ModbusInfo(_Model):
    unit_id: int = Field(ge=0, le=247)
    host: str | None = None
    port: int | None = None


class OpcuaInfo(_Model):
    namespace_uri: str
    security: list[str] = Field(default_factory=lambda: ["None"])
    endpoint: str | None = None
    object_node_id: str | None = None
    users: list[dict[str, str]] = Field(default_factory=list)


class DeviceIdentity(_Model):
    """The vendor data a device reports on Modbus function 43 / MEI 14 (objects 0x00-0x05)."""

    vendor_name: IdentityText
    product_code: IdentityText
    revision: IdentityText = Field(description="MajorMinorRevision, e.g. V2.11")
    vendor_url: IdentityText | None = None
    product_name: IdentityText | None = None
    model_name: IdentityText | None = None


class Datasheet(_Model):
    plant: str
    lab: str
    student: str
    device: str | None = None
    identity: DeviceIdentity | None = None
    modbus: ModbusInfo
    opcua: OpcuaInfo
    tags: list[TagSpec]

    def tag(self, name: str) -> TagSpec:
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(name)


def load_datasheet(path: str | Path) -> Datasheet:
    """Read a datasheet JSON file; ConfigError names the file and the bad field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("datasheet file not found", file=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", file=path, line=exc.lineno) from None
    try:
        return Datasheet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], file=path, key=key, value=first.get("input")) from None
