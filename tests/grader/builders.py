"""Hand-made observations and a small datasheet for the checks' unit tests."""

from __future__ import annotations

import json
import time
from typing import Any

from grader.checks.registry import CheckContext, CheckOutcome, default_registry
from grader.observation import ActionRecord, Observation, ObservedMessage, TruthSeries
from grader.spec import Bilingual, CheckSpec, LabSpec
from iiotlab.datasheet import Datasheet

T0 = 1_763_719_200_000  # gateway start, epoch ms
TENANT, DEVICE = "alice", "tank-1"

SHEET = Datasheet.model_validate(
    {
        "plant": "tank",
        "lab": "edge-01",
        "student": TENANT,
        "device": DEVICE,
        "modbus": {"unit_id": 3},
        "opcua": {"namespace_uri": "urn:test"},
        "tags": [
            {
                "name": "level",
                "access": "r",
                "range": [0, 5],
                "tolerance": 0.01,
                "modbus": {
                    "table": "input",
                    "address": 10,
                    "type": "float32",
                    "word_order": "CDAB",
                },
            },
            {
                "name": "flow",
                "access": "r",
                "range": [0, 250],
                "tolerance": 0.2,
                "modbus": {
                    "table": "input",
                    "address": 12,
                    "type": "int32",
                    "word_order": "ABCD",
                    "scale": 0.1,
                    "offset": 0.0,
                },
            },
            {
                "name": "pump_speed_sp",
                "access": "rw",
                "range": [0, 100],
                "tolerance": 0.01,
                "modbus": {
                    "table": "holding",
                    "address": 20,
                    "type": "float32",
                    "word_order": "CDAB",
                },
            },
            {
                "name": "pump_on",
                "access": "rw",
                "modbus": {"table": "coil", "address": 1, "type": "bool"},
            },
        ],
    }
)


def level_at(ts: int) -> float:
    return round(1.0 + ((ts - T0) % 20_000) / 10_000, 3)  # ramps 1.0 -> 3.0 every 20 s


def flow_at(ts: int) -> float:
    return round(50.0 + ((ts - T0) // 1000 % 7) * 3.1, 1)


def truth(seconds: int = 30) -> TruthSeries:
    samples = []
    for ts in range(T0 - 2000, T0 + seconds * 1000, 100):
        samples.append(
            (
                ts,
                {
                    "level": level_at(ts),
                    "flow": flow_at(ts),
                    "pump_speed_sp": 40.0,
                    "pump_on": True,
                },
            )
        )
    return TruthSeries(tuple(samples))


def telemetry(
    seq: int,
    ts: int,
    metrics: dict[str, Any],
    *,
    received: int | None = None,
    replayed: bool = False,
    quality: dict[str, str] | None = None,
) -> ObservedMessage:
    payload: dict[str, Any] = {
        "v": 1,
        "device": DEVICE,
        "seq": seq,
        "ts": ts,
        "metrics": metrics,
        "replayed": replayed,
    }
    if quality is not None:
        payload["quality"] = quality
    return ObservedMessage(
        f"iiot/{TENANT}/{DEVICE}/telemetry",
        json.dumps(payload).encode(),
        received if received is not None else ts + 20,
    )


def status(state: str, received: int, *, retain: bool = False) -> ObservedMessage:
    return ObservedMessage(
        f"iiot/{TENANT}/{DEVICE}/status",
        json.dumps({"v": 1, "state": state, "ts": received}).encode(),
        received,
        retain,
    )


class ScriptedBroker:
    """first_retained answers from a script: what successive fresh subscriptions got."""

    def __init__(self, answers: list[ObservedMessage | None]) -> None:
        self.answers = answers
        self.subscriptions = 0
        self.times: list[float] = []  # time.monotonic() of each subscription

    async def first_retained(self, topic: str, wait_s: float) -> ObservedMessage | None:
        self.subscriptions += 1
        self.times.append(time.monotonic())
        return self.answers.pop(0) if self.answers else None


def good_stream(
    seconds: int = 30, period_ms: int = 1000, transform: dict[str, Any] | None = None
) -> list[ObservedMessage]:
    """A correct gateway: every second all metrics, seq contiguous."""
    out = []
    for i, ts in enumerate(range(T0 + 500, T0 + seconds * 1000, period_ms)):
        metrics: dict[str, Any] = {
            "level": level_at(ts),
            "flow": flow_at(ts),
            "pump_speed_sp": 40.0,
            "pump_on": True,
        }
        for name, function in (transform or {}).items():
            metrics[name] = function(ts, metrics[name])
        out.append(telemetry(i + 1, ts, metrics))
    return out


def observation(
    messages: list[ObservedMessage],
    *,
    seconds: int = 30,
    actions: tuple[ActionRecord, ...] = (),
    **extra: Any,
) -> Observation:
    return Observation(
        tenant=TENANT,
        device=DEVICE,
        started_ms=T0,
        finished_ms=T0 + seconds * 1000,
        messages=tuple(messages),
        truth=truth(seconds),
        actions=actions,
        startup_s=2.0,
        **extra,
    )


LAB = LabSpec.model_validate(
    {
        "id": "edge-01",
        "title": {"en": "t", "zh": "t"},
        "summary": {"en": "s", "zh": "s"},
        "track": "edge",
        "positions": [4],
        "plant": "tank",
        "duration_s": 30,
        "checks": [
            {
                "id": "x",
                "kind": "contract_conformance",
                "points": 10,
                "hint": {"en": "h", "zh": "h"},
            }
        ],
    }
)


def run_check(
    kind: str,
    obs: Observation,
    points: float = 10,
    *,
    datasheet: Datasheet = SHEET,
    **params: Any,
) -> CheckOutcome:
    check_kind = default_registry().get(kind)
    assert check_kind is not None
    spec = CheckSpec(
        id="c", kind=kind, points=points, params=params, hint=Bilingual(en="hint", zh="提示")
    )
    context: CheckContext[Any] = CheckContext(
        LAB, spec, check_kind.params.model_validate(params), datasheet, obs
    )
    return check_kind.evaluate(context)
