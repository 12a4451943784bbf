"""No part of any check awards points without evidence that the gateway did something.

A gateway that does nothing (it never connects, publishes, answers or writes) meets the
grader's probes as they really happen: the command is sent, the broker attacks are refused,
the platform answers with nothing, the scenario is played. Every built-in kind scores 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from grader.checks.registry import BUILTIN_MODULES, default_registry
from grader.observation import ActionRecord, GatewayExit, ProbeRecord, TruthEvent
from tests.grader.builders import T0, observation, run_check

pytestmark = pytest.mark.unit

SCENARIO = (
    ActionRecord("broker_outage", T0 + 8000, T0 + 12_000),
    ActionRecord("plant_event", T0 + 9000, T0 + 9000, {"kind": "spike", "tag": "level"}),
    ActionRecord("plc_outage", T0 + 14_000, T0 + 18_000),
    ActionRecord("gateway_kill", T0 + 20_000, T0 + 21_000),
)
KILLED = (GatewayExit(T0 + 20_000, -9, True),)  # the grader's kill; the gateway never exits
EVENTS = (TruthEvent(T0 + 9000, "spike", "tank-1", {"tag": "level"}),)


def probe(name: str, ok: bool, saw: str = "", **detail: Any) -> ProbeRecord:
    return ProbeRecord("c", name, T0 + 6000, "", saw, ok, detail)


def command(metric: str, value: float) -> ProbeRecord:
    return probe("cmd", True, "sent", id="grader-c", metric=metric, value=value, sent_ms=T0 + 6000)


REFUSED = [
    probe(name, True, "refused")
    for name in (
        "anonymous",
        "wrong_password",
        "cross_tenant_read",
        "cross_tenant_write",
        "plaintext_closed",
    )
]
# per kind: (params, what the probes recorded against a gateway that does nothing)
DO_NOTHING: dict[str, tuple[dict[str, Any], list[ProbeRecord]]] = {
    "gateway_online": ({}, [probe("retained_status", False, "nothing retained")]),
    "contract_conformance": ({}, []),
    "values_match_truth": ({}, []),
    "deadband_heartbeat": ({}, []),
    "no_loss_across_broker_outage": ({}, []),
    "plc_outage_recovery": ({}, []),
    "command_write_through": ({}, [command("pump_speed_sp", 42.5)]),
    "command_refusal": ({}, [command("level", 1.0)]),
    "broker_security": ({}, REFUSED),
    "opcua_security_negotiated": ({"require_user": True}, []),
    "platform_alarm_raised": ({"metric": "level"}, [probe("alarms", True, body=[], status=200)]),
    "platform_identifier_resolves": (
        {"identifier": "88.100.1/LT-101"},
        [probe("resolve", False, "HTTP 404", body={"detail": "unknown"}, status=404)],
    ),
    "platform_aggregate_matches_truth": (
        {"metric": "level"},
        [probe("series", True, body={"points": []}, status=200, interval=5000)],
    ),
    "modbus_write_protection": ({}, [probe("connect", False, "connection refused", port=1)]),
    "each_device": ({"check": "plc_outage_recovery"}, []),
    "manual": ({"rubric": {"en": "architecture", "zh": "架构"}}, []),
    "change_latency": ({"max_p95_ms": 1500}, []),
    "modbus_connections": ({}, []),
}


def test_every_builtin_kind_is_covered() -> None:
    builtin = {
        kind.name
        for kind in default_registry().kinds()
        if kind.evaluate.__module__ in BUILTIN_MODULES
    }
    assert builtin == set(DO_NOTHING)


@pytest.mark.parametrize("kind", sorted(DO_NOTHING))
def test_a_gateway_that_does_nothing_scores_zero(kind: str) -> None:
    params, probes = DO_NOTHING[kind]
    obs = observation(
        [], actions=SCENARIO, probes=tuple(probes), gateway_exits=KILLED, truth_events=EVENTS
    )
    outcome = run_check(kind, obs, **params)
    assert outcome.points == 0, outcome.message
