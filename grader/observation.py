"""What a grading run saw: pure, frozen data the checks evaluate.

The runner fills an Observation from the simulator (ground truth, write log, OPC UA
sessions), from its own MQTT observer (every message on the tenant's topics with its
arrival time), from the scenario it played and from the probes the checks ran. Checks
never talk to the network while evaluating, so each one is testable on hand-made data.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The simulator's write log record, used as is (re-exported for the checks).
from simulators.runtime import WriteRecord as WriteRecord

Value = float | int | bool | str


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
        """The payload as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None


@dataclass(frozen=True)
class TruthEvent:
    ts_ms: int
    kind: str
    device: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpcuaSession:
    opened_ms: int
    client: str
    policy: str
    mode: str
    user: str | None = None
    closed_ms: int | None = None


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

    def of_kind(self, kind: str) -> list[ObservedMessage]:
        prefix = f"iiot/{self.tenant}/{self.device}/"
        return [m for m in self.messages if m.topic == prefix + kind]

    def actions_named(self, action: str) -> list[ActionRecord]:
        return [a for a in self.actions if a.action == action]

    def probes_of(self, check_id: str) -> list[ProbeRecord]:
        return [p for p in self.probes if p.check_id == check_id]

    @property
    def steady_from_ms(self) -> int:
        """When the gateway has had its start-up grace."""
        return self.started_ms + int(self.startup_s * 1000)
