"""A payload a check cannot decode is the student's contract violation, never a crash."""

from __future__ import annotations

import json

import pytest

from grader.checks.registry import BUILTIN_MODULES, default_registry
from grader.observation import ObservedMessage
from tests.grader.builders import DEVICE, T0, TENANT, good_stream, observation, run_check
from tests.grader.test_checks_do_nothing import DO_NOTHING, EVENTS, case_actions, case_sheet

pytestmark = pytest.mark.unit

TOPIC = f"iiot/{TENANT}/{DEVICE}/telemetry"


def hostile(received: int) -> list[ObservedMessage]:
    fields = {"v": 1, "device": DEVICE, "seq": 999, "replayed": True}
    payloads = [
        b"[" * 50_000,  # RecursionError in json
        b'{"v": 1, "ts": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b"\xff\xfe not utf-8",  # UnicodeDecodeError
        b'{"v": 1, "seq": ' + b"9" * 100_000 + b"}",  # ValueError: too many digits
        json.dumps({**fields, "ts": 10**30, "metrics": {"level": 10**400}}).encode(),
        json.dumps({**fields, "ts": T0 + 9000, "metrics": {"level": [1, {"a": 2}]}}).encode(),
        json.dumps({**fields, "ts": True, "metrics": "level", "quality": [1]}).encode(),
        b'{"v": 1, "ts": 1763719209000, "metrics": {"level": NaN, "flow": Infinity}}',
    ]
    return [ObservedMessage(TOPIC, p, received + i) for i, p in enumerate(payloads)]


@pytest.mark.parametrize("kind", sorted(DO_NOTHING))
def test_no_check_crashes_on_hostile_telemetry(kind: str) -> None:
    params, probes = DO_NOTHING[kind]
    messages = [*good_stream(), *hostile(T0 + 12_500)]
    obs = observation(
        messages, actions=case_actions(kind), probes=tuple(probes), truth_events=EVENTS
    )
    outcome = run_check(kind, obs, datasheet=case_sheet(kind), **params)
    assert 0 <= outcome.points <= outcome.max_points
    json.dumps(outcome.evidence)  # the result stays serialisable


def test_hostile_payloads_are_counted_as_contract_violations() -> None:
    outcome = run_check("contract_conformance", observation([*good_stream(), *hostile(T0)]))
    assert outcome.evidence["violations"] == 8 and not outcome.passed
    reasons = " | ".join(v["reason"] for v in outcome.evidence["saw"])
    assert "nest" in reasons or "deep" in reasons or "Recursion" in reasons, reasons


def test_every_builtin_kind_meets_hostile_input() -> None:
    builtin = {
        k.name for k in default_registry().kinds() if k.evaluate.__module__ in BUILTIN_MODULES
    }
    assert builtin == set(DO_NOTHING)


def test_hostile_acks_and_statuses_leave_only_contract_fields_in_evidence() -> None:
    nested = {"deep": [[[[[[["x"]]]]]]] * 10}
    ack = {"v": 1, "id": "grader-c", "ok": False, "error": nested, "extra": nested}
    messages = [
        ObservedMessage(f"iiot/{TENANT}/{DEVICE}/cmd/ack", json.dumps(ack).encode(), T0 + 6100),
        ObservedMessage(
            f"iiot/{TENANT}/{DEVICE}/status", json.dumps({"state": nested}).encode(), T0 + 100
        ),
    ]
    params, probes = DO_NOTHING["command_refusal"]
    obs = observation(messages, probes=tuple(probes))
    refusal = run_check("command_refusal", obs, **params)
    assert refusal.evidence["saw"]["ack"] == {
        "id": "grader-c",
        "ok": False,
        "error": None,
        "received_ms": T0 + 6100,
    }
    assert refusal.points == 5  # answered and did not write; no error text
    online = run_check("gateway_online", obs)
    assert online.evidence["saw"] == [{"state": None, "received_ms": T0 + 100}]
