"""What a grading run saw: pure, frozen data the checks evaluate.

The runner fills an Observation from the simulator (ground truth, write log, OPC UA
sessions), from its own MQTT observer (every message on the tenant's topics with its
arrival time), from the scenario it played and from the probes the checks ran. Checks
never talk to the network while evaluating, so each one is testable on hand-made data.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from grader.artifacts import SubmittedFile
from iiotlab.datasheet import Datasheet

# The simulator's records, used as is (re-exported for the checks).
from simulators.opcua.records import MonitoredItemRecord as MonitoredItemRecord
from simulators.opcua.records import OpcuaSessionRecord
from simulators.runtime import WriteRecord as WriteRecord

Value = float | int | bool | str

_INT_LIMIT = 2**63  # contract v1 integers fit in 64 bits; larger ones break float arithmetic


def decode_json(payload: bytes) -> tuple[Any, str | None]:
    """(the JSON value, None), or (None, why) when the payload is not JSON.

    The payload is the student's: hostile input (50,000 nested brackets, invalid UTF-8, a
    100,000-digit number) is a contract violation of theirs, never a crash of a check, so
    whatever decoding raises is caught here.
    """
    try:
        return json.loads(payload), None
    except Exception as exc:  # RecursionError, ValueError, UnicodeDecodeError, MemoryError...
        return None, f"not JSON ({type(exc).__name__})"


def _integer(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT_LIMIT:
        return value
    return None


def _metric(value: object) -> bool:
    """A metric value the checks can compare: bool, str, 64-bit int or finite float."""
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return abs(value) < _INT_LIMIT
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True)
class TelemetryRecord:
    """One telemetry message, decoded defensively: fields that break the contract are None
    (seq, ts, replayed) or left out (metrics, quality), so checks never see hostile types."""

    received_ms: int
    seq: int | None
    ts: int | None
    metrics: Mapping[str, Value]
    quality: Mapping[str, str]
    replayed: bool | None

    @classmethod
    def parse(cls, received_ms: int, data: object) -> TelemetryRecord | None:
        if not isinstance(data, dict):
            return None
        metrics = data.get("metrics")
        quality = data.get("quality")
        replayed = data.get("replayed")
        return cls(
            received_ms,
            _integer(data.get("seq")),
            _integer(data.get("ts")),
            {
                str(k): v
                for k, v in (metrics.items() if isinstance(metrics, dict) else ())
                if _metric(v)
            },
            {
                str(k): v
                for k, v in (quality.items() if isinstance(quality, dict) else ())
                if isinstance(v, str)
            },
            replayed if isinstance(replayed, bool) else None,
        )

    @property
    def reported(self) -> set[str]:
        """Metrics this message speaks about (a value, or a quality)."""
        return set(self.metrics) | set(self.quality)


@dataclass(frozen=True)
class ObservedMessage:
    topic: str
    payload: bytes
    received_ms: int
    retain: bool = False
    qos: int = 1

    @property
    def kind(self) -> str:
        """telemetry, status, cmd, cmd/ack, alarm (or the raw tail of the topic)."""
        parts = self.topic.split("/")
        return "/".join(parts[3:]) if len(parts) >= 4 else ""

    def json(self) -> Any:
        """The payload as JSON, or None when it is not JSON (whatever it holds)."""
        return decode_json(self.payload)[0]


def status_state(message: ObservedMessage) -> str | None:
    """The `state` of a status message (at most 40 characters), or None."""
    data = message.json()
    state = data.get("state") if isinstance(data, dict) else None
    return state[:40] if isinstance(state, str) else None


@dataclass(frozen=True)
class TruthEvent:
    ts_ms: int
    kind: str
    device: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpcuaSession:
    """One OPC UA client session and the data-access services it used (value_reads:
    (ts_ms, node id) of each Value read; other_reads: reads of other attributes; browses:
    Browse, BrowseNext and TranslateBrowsePathsToNodeIds calls)."""

    opened_ms: int
    client: str
    policy: str
    mode: str
    user: str | None = None
    closed_ms: int | None = None
    monitored_items: tuple[MonitoredItemRecord, ...] = ()
    value_reads: tuple[tuple[int, str], ...] = ()
    other_reads: int = 0
    browses: int = 0

    @classmethod
    def of(cls, record: OpcuaSessionRecord) -> OpcuaSession:
        """The grader's frozen copy of a simulator's session record."""
        activity = record.activity
        return cls(
            record.opened_ms,
            record.client,
            record.policy,
            record.mode,
            record.user,
            record.closed_ms,
            tuple(activity.monitored_items),
            tuple(activity.reads),
            activity.other_reads,
            activity.browses,
        )


@dataclass(frozen=True)
class ActionRecord:
    """A scenario step the grader played: broker_outage, plc_outage, gateway_kill, ..."""

    action: str
    started_ms: int
    ended_ms: int
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeRecord:
    """One active test a check's probe made during the run (attack, command, query)."""

    check_id: str
    name: str
    ts_ms: int
    expected: str
    saw: str
    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayExit:
    ts_ms: int
    returncode: int | None
    killed_by_grader: bool


@dataclass(frozen=True)
class TruthSeries:
    """Ground-truth samples of one device, sorted by time."""

    samples: tuple[tuple[int, Mapping[str, Value]], ...] = ()
    times: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(ts for ts, _ in self.samples))

    def value_at(self, tag: str, ts_ms: int) -> Value | None:
        """The latest sample at or before ts_ms (the value the plant served then)."""
        index = bisect.bisect_right(self.times, ts_ms) - 1
        if index < 0:
            return None
        return self.samples[index][1].get(tag)

    def values_between(self, tag: str, start_ms: int, end_ms: int) -> list[Value]:
        return [v[tag] for ts, v in self.samples if start_ms <= ts <= end_ms and tag in v]


@dataclass(frozen=True)
class DeviceObservation:
    """One device of a multi-plant lab's line: its datasheet (as the gateway got it), its
    simulator's truth, the writes it logged, the OPC UA sessions it served and the
    connections its Modbus fault proxy accepted."""

    device: str
    plant: str
    datasheet: Datasheet
    truth: TruthSeries = TruthSeries()
    writes: tuple[WriteRecord, ...] = ()
    opcua_sessions: tuple[OpcuaSession, ...] = ()
    modbus_connections: int | None = None  # accepted by its Modbus proxy (None: no Modbus)


@dataclass(frozen=True)
class Observation:
    tenant: str
    device: str
    started_ms: int  # gateway started
    finished_ms: int
    messages: tuple[ObservedMessage, ...] = ()
    truth: TruthSeries = TruthSeries()
    truth_events: tuple[TruthEvent, ...] = ()
    writes: tuple[WriteRecord, ...] = ()
    opcua_sessions: tuple[OpcuaSession, ...] = ()
    actions: tuple[ActionRecord, ...] = ()
    probes: tuple[ProbeRecord, ...] = ()
    gateway_exits: tuple[GatewayExit, ...] = ()
    startup_s: float = 3.0
    # multi-plant labs: every device of the line (the fields above then speak of the first
    # device, except writes and opcua_sessions, which hold every device's)
    line: tuple[DeviceObservation, ...] = ()
    # files the submission wrote to IIOTLAB_OUTPUT_DIR, read after the run (grader/artifacts.py)
    artifacts: tuple[SubmittedFile, ...] = ()

    def for_device(self, device: str) -> Observation:
        """The observation as a single-plant lab of `device` would have seen it: its topics,
        truth, writes, sessions, truth events, and the scenario steps aimed at it."""
        for entry in self.line:
            if entry.device == device:
                break
        else:
            raise KeyError(f"no device {device!r} in the line")
        return replace(
            self,
            device=device,
            truth=entry.truth,
            writes=entry.writes,
            opcua_sessions=entry.opcua_sessions,
            truth_events=tuple(e for e in self.truth_events if e.device in ("", device)),
            actions=tuple(a for a in self.actions if a.detail.get("device") in (None, device)),
            line=(),
        )

    def of_kind(self, kind: str) -> list[ObservedMessage]:
        prefix = f"iiot/{self.tenant}/{self.device}/"
        return [m for m in self.messages if m.topic == prefix + kind]

    @cached_property
    def telemetry(self) -> tuple[TelemetryRecord, ...]:
        """Every telemetry message that is a JSON object, decoded once, in arrival order."""
        records = (
            TelemetryRecord.parse(m.received_ms, m.json()) for m in self.of_kind("telemetry")
        )
        return tuple(r for r in records if r is not None)

    def actions_named(self, action: str) -> list[ActionRecord]:
        return [a for a in self.actions if a.action == action]

    def probes_of(self, check_id: str) -> list[ProbeRecord]:
        return [p for p in self.probes if p.check_id == check_id]

    @property
    def steady_from_ms(self) -> int:
        """When the gateway has had its start-up grace."""
        return self.started_ms + int(self.startup_s * 1000)
