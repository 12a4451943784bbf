"""MQTT contract v1: topics and payload models shared by gateway, platform and grader."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iiotlab.errors import PayloadError

CONTRACT_VERSION = 1
TOPIC_ROOT = "iiot"
MAX_PAYLOAD_BYTES = 256 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

MessageKind = Literal["telemetry", "status", "cmd", "cmd/ack", "alarm"]
MetricValue = bool | int | float | str


def topic(tenant: str, device: str, kind: MessageKind) -> str:
    for name, value in (("tenant", tenant), ("device", device)):
        if not _SEGMENT.match(value):
            raise PayloadError(f"{name} {value!r} is not a valid topic segment")
    return f"{TOPIC_ROOT}/{tenant}/{device}/{kind}"


def parse_topic(name: str) -> tuple[str, str, MessageKind]:
    """Split `iiot/{tenant}/{device}/{kind}`; raise PayloadError for anything else."""
    parts = name.split("/")
    if len(parts) < 4 or parts[0] != TOPIC_ROOT:
        raise PayloadError(f"topic {name!r} is not iiot/{{tenant}}/{{device}}/{{kind}}")
    tenant, device, kind = parts[1], parts[2], "/".join(parts[3:])
    if kind not in ("telemetry", "status", "cmd", "cmd/ack", "alarm"):
        raise PayloadError(f"topic {name!r}: unknown message kind {kind!r}")
    if not _SEGMENT.match(tenant) or not _SEGMENT.match(device):
        raise PayloadError(f"topic {name!r}: tenant or device is not a valid segment")
    return tenant, device, kind  # type: ignore[return-value]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1]


EpochMillis = Annotated[int, Field(ge=0, lt=10**14)]


class Telemetry(_Payload):
    device: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, lt=2**63)
    ts: EpochMillis
    metrics: dict[str, MetricValue]
    quality: dict[str, Literal["good", "bad", "uncertain"]] | None = None
    replayed: bool = False

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, MetricValue]) -> dict[str, MetricValue]:
        for name, value in metrics.items():
            if not name or len(name) > 64:
                raise ValueError(f"metric name {name!r} must be 1-64 characters")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}, not a finite number")
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
                raise ValueError(f"metric {name!r} does not fit in 64 bits")
            if isinstance(value, str) and len(value) > 1024:
                raise ValueError(f"metric {name!r} is a string over 1024 characters")
        return metrics


class Status(_Payload):
    state: Literal["online", "offline"]
    ts: EpochMillis


class Command(_Payload):
    id: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=64)
    value: MetricValue


class CommandAck(_Payload):
    id: str = Field(min_length=1, max_length=128)
    ok: bool
    error: str | None = None


class Alarm(_Payload):
    rule: str = Field(min_length=1, max_length=128)
    state: Literal["active", "cleared"]
    metric: str
    value: MetricValue | None = None
    ts: EpochMillis


MODELS: dict[str, type[_Payload]] = {
    "telemetry": Telemetry,
    "status": Status,
    "cmd": Command,
    "cmd/ack": CommandAck,
    "alarm": Alarm,
}


def decode_payload(kind: MessageKind | str, raw: bytes) -> _Payload:
    """Validate raw MQTT bytes against contract v1; PayloadError says why not."""
    model = MODELS.get(kind)
    if model is None:
        raise PayloadError(f"unknown message kind {kind!r}")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(raw)} bytes, over the {MAX_PAYLOAD_BYTES} limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object")
    if data.get("v") != CONTRACT_VERSION:
        raise PayloadError(f"payload 'v' is {data.get('v')!r}, contract v1 needs 1")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PayloadError(f"{kind}: field '{where}': {first['msg']}") from None


def encode_payload(payload: _Payload) -> bytes:
    return payload.model_dump_json(exclude_none=False).encode()
