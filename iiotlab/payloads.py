"""MQTT contract v1: topics and payload models shared by gateway, platform and grader."""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iiotlab.errors import PayloadError

CONTRACT_VERSION = 1
TOPIC_ROOT = "iiot"
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_JSON_DEPTH = 16  # contract v1 needs 2 (the payload object, then metrics or quality)
_MAX_INT_CHARS = 20  # "-9223372036854775808": longer integers cannot fit in 64 bits
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

MessageKind = Literal["telemetry", "status", "cmd", "cmd/ack", "alarm", "meta"]
MetricValue = bool | int | float | str


def _cut(text: str, limit: int = 60) -> str:
    """Text cut to `limit` characters: reasons stay small whatever was sent."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: object) -> str:
    return _cut(repr(value))


def topic(tenant: str, device: str, kind: MessageKind) -> str:
    for name, value in (("tenant", tenant), ("device", device)):
        if not _SEGMENT.fullmatch(value):
            raise PayloadError(f"{name} {_short(value)} is not a valid topic segment")
    return f"{TOPIC_ROOT}/{tenant}/{device}/{kind}"


def parse_topic(name: str) -> tuple[str, str, MessageKind]:
    """Split `iiot/{tenant}/{device}/{kind}`; raise PayloadError for anything else."""
    parts = name.split("/")
    if len(parts) < 4 or parts[0] != TOPIC_ROOT:
        raise PayloadError(f"topic {_short(name)} is not iiot/{{tenant}}/{{device}}/{{kind}}")
    tenant, device, kind = parts[1], parts[2], "/".join(parts[3:])
    if kind not in ("telemetry", "status", "cmd", "cmd/ack", "alarm", "meta"):
        raise PayloadError(f"topic {_short(name)}: unknown message kind {_short(kind)}")
    if not _SEGMENT.fullmatch(tenant) or not _SEGMENT.fullmatch(device):
        raise PayloadError(f"topic {_short(name)}: tenant or device is not a valid segment")
    return tenant, device, kind  # type: ignore[return-value]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1]

    @field_validator("v", mode="before")
    @classmethod
    def _integer_one(cls, value: object) -> object:
        # Literal[1] takes true (and, parsing JSON, 1.0) for 1: contract v1 needs the integer
        if type(value) is not int:
            raise ValueError(f"'v' is {_short(value)}, contract v1 needs the integer 1")
        return value


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
        # the platform runs this on every message: the names at C speed, then one type
        # test per value (pydantic gives exact bool, int, float and str here)
        if "" in metrics or max(map(len, metrics), default=0) > 64:
            name = next(n for n in metrics if not n or len(n) > 64)
            raise ValueError(f"metric name {_short(name)} must be 1-64 characters")
        for name, value in metrics.items():
            kind = type(value)
            if kind is float:
                if not math.isfinite(value):  # type: ignore[arg-type]
                    raise ValueError(f"metric {name!r} is {value}, not a finite number")
            elif kind is int:
                if not -(2**63) < value < 2**63:  # type: ignore[operator]
                    raise ValueError(f"metric {name!r} does not fit in 64 bits")
            elif kind is str and len(value) > 1024:  # type: ignore[arg-type]
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


class TagMeta(BaseModel):
    """A metric's engineering metadata, as the device's OPC UA server describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    unit: str = Field(max_length=64, description="EngineeringUnits DisplayName")
    unit_id: int | None = Field(
        default=None, ge=-(2**31), lt=2**31, description="EngineeringUnits UnitId (UNECE)"
    )
    eu_range: list[float] | None = Field(
        default=None, min_length=2, max_length=2, description="EURange [low, high]"
    )
    description: str | None = Field(default=None, max_length=256)


class Meta(_Payload):
    """Retained description of a device's metrics (additive to contract v1)."""

    device: str = Field(min_length=1, max_length=64)
    ts: EpochMillis
    tags: dict[str, TagMeta]


MODELS: dict[str, type[_Payload]] = {
    "telemetry": Telemetry,
    "status": Status,
    "cmd": Command,
    "cmd/ack": CommandAck,
    "alarm": Alarm,
    "meta": Meta,
}


def _reject_constant(name: str) -> object:
    raise PayloadError(
        f"payload has {name}, which is not JSON: send a finite number or leave the metric out"
    )


def _parse_int(digits: str) -> int:
    if len(digits) > _MAX_INT_CHARS:
        raise PayloadError(
            f"payload has an integer of {len(digits.lstrip('-'))} digits: "
            "integers must fit in 64 bits"
        )
    return int(digits)


# one decoder for every payload (json.loads with hooks would build one per call)
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)


def _depth_of(data: object, limit: int) -> int:
    """Nesting depth of parsed JSON (an object or array counts one level), capped at
    limit + 1; iterative, so no input can exhaust the stack."""
    deepest = 0
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        values = item.values() if isinstance(item, dict) else item
        pending.extend((value, depth + 1) for value in values if isinstance(value, dict | list))
    return deepest


def _too_deep(limit: int, depth: int | None = None) -> PayloadError:
    found = f"{depth} levels deep" if depth is not None else "hundreds of levels deep"
    return PayloadError(
        f"payload nests objects/arrays {found}, over the limit of {limit}: "
        "contract v1 payloads are an object of flat values (metrics, quality)"
    )


def _parse_json(raw: bytes, max_depth: int) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        data: object = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from None
    # Fewer brackets than the limit cannot nest past it: skip the walk for usual payloads.
    if text.count("[") + text.count("{") > max_depth:
        depth = _depth_of(data, max_depth)
        if depth > max_depth:
            raise _too_deep(max_depth, depth)
    if "\\u" in text:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PayloadError(
                f"payload has a lone UTF-16 surrogate escape ({exc.object[exc.start]!a}):"
                " strings must be valid Unicode"
            ) from None
    return data


def decode_payload(
    kind: MessageKind | str,
    raw: bytes,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> _Payload:
    """Validate raw MQTT bytes against contract v1.

    Raises PayloadError, and nothing else, for any input: its message is the reason.
    """
    try:
        return _decode(kind, raw, max_bytes, max_depth)
    except PayloadError:
        raise
    except RecursionError:
        raise _too_deep(max_depth) from None
    except Exception as exc:  # a bug here must not take the caller's batch with it
        raise PayloadError(f"payload could not be decoded ({type(exc).__name__})") from None


def _decode(kind: str, raw: bytes, max_bytes: int, max_depth: int) -> _Payload:
    model = MODELS.get(kind)
    if model is None:
        raise PayloadError(f"unknown message kind {_short(kind)}")
    if len(raw) > max_bytes:
        raise PayloadError(
            f"payload is {len(raw)} bytes, over the limit of {max_bytes} bytes: "
            "send smaller messages (split the metrics over several messages)"
        )
    if model is Telemetry and b"\\u" not in raw:
        # the platform's hot path: parsed and validated in one pass by pydantic-core, which
        # refuses what _parse_json refuses (invalid UTF-8, lone surrogates, numbers out of
        # range, nesting past its recursion limit) and keeps the last of duplicate keys as
        # json does; on any error the steps below say why, in the contract's words
        with contextlib.suppress(ValidationError):
            return Telemetry.model_validate_json(raw)
    data = _parse_json(raw, max_depth)
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object")
    version = data.get("v")
    if type(version) is not int or version != CONTRACT_VERSION:  # true and 1.0 are no 1
        raise PayloadError(f"payload 'v' is {_short(version)}, contract v1 needs the integer 1")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PayloadError(f"{kind}: field '{_cut(where)}': {first['msg']}") from None


def encode_payload(payload: _Payload) -> bytes:
    return payload.model_dump_json(exclude_none=False).encode()
