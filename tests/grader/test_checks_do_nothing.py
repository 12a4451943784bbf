"""No part of any check awards points without evidence that the gateway did something.

A gateway that does nothing (it never connects, publishes, answers or writes) meets the
grader's probes as they really happen: the command is sent, the broker attacks are refused,
the platform answers with nothing, the scenario is played. Every built-in kind scores 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from grader.checks.mosquitto_policy import ATTACKS
from grader.checks.registry import BUILTIN_MODULES, default_registry
from grader.modbus_tap import ATTACK_TYPES
from grader.observation import ActionRecord, GatewayExit, ProbeRecord, TruthEvent
from iiotlab.datasheet import Datasheet
from simulators.variants import build_datasheet
from tests.grader.builders import SHEET, T0, TENANT, observation, run_check

pytestmark = pytest.mark.unit

SCENARIO = (
    ActionRecord("broker_outage", T0 + 8000, T0 + 12_000),
    ActionRecord("plant_event", T0 + 9000, T0 + 9000, {"kind": "spike", "tag": "level"}),
    ActionRecord("plc_outage", T0 + 14_000, T0 + 18_000),
    ActionRecord("gateway_kill", T0 + 20_000, T0 + 21_000),
)
# edge-03's scenario: the gateway is killed and restarted inside the broker outage
RESTART_IN_OUTAGE = (
    ActionRecord("broker_outage", T0 + 8000, T0 + 16_000),
    ActionRecord("gateway_kill", T0 + 10_000, T0 + 10_500),
    ActionRecord("gateway_restart", T0 + 12_000, T0 + 12_500),
)
KILLED = (GatewayExit(T0 + 20_000, -9, True),)  # the grader's kill; the gateway never exits
EVENTS = (TruthEvent(T0 + 9000, "spike", "tank-1", {"tag": "level"}),)


def probe(name: str, ok: bool, saw: str = "", **detail: Any) -> ProbeRecord:
    return ProbeRecord("c", name, T0 + 6000, "", saw, ok, detail)


def command(metric: str, value: float) -> ProbeRecord:
    return probe("cmd", True, "sent", id="grader-c", metric=metric, value=value, sent_ms=T0 + 6000)


def sheet(plant: str, lab: str) -> Datasheet:
    return build_datasheet(plant, lab, TENANT, "test-secret")


def answered(name: str, body: Any) -> ProbeRecord:
    """The platform answered the grader's query with what a gateway that did nothing leaves."""
    return probe(name, True, "HTTP 200", body=body, status=200)


# the grader's Modbus tap played its attacks; the detector of a do-nothing gateway said nothing
PLAYED = [
    probe(
        f"attack-{i}",
        True,
        "12 requests",
        type=kind,
        client="10.0.0.9",
        start_ms=T0 + 6000 + 3000 * i,
        end_ms=T0 + 7000 + 3000 * i,
    )
    for i, kind in enumerate(ATTACK_TYPES)
]
LEGIT_WRITES = [
    {"ts": T0 + at, "client": "10.0.0.3", "address": 20, "reply": "ok"} for at in (4500, 13_500)
]
PLAYED.append(
    probe(
        "legit-writes",
        True,
        "2 writes",
        writes=LEGIT_WRITES,
        hmi="10.0.0.2",
        engineering="10.0.0.3",
    )
)
COMPRESSOR = sheet("compressor", "edge-02-report-by-exception")
DEADBANDS = {"discharge_pressure": 0.2, "motor_current": 4.0, "vibration_rms": 0.3}
BOILER_TAGS = ["temperature", "pressure", "heater_power"]
MOSQUITTO_ATTACKS = list(ATTACKS)  # every attack the sec-03 check knows
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
    "opcua_subscription": ({"tags": BOILER_TAGS, "deadband_tags": BOILER_TAGS}, []),
    "opcua_units_published": (
        {"tags": BOILER_TAGS},
        [probe("retained_meta", False, "nothing retained")],
    ),
    "energy_used_matches_truth": ({"metric": "energy_used_kwh"}, []),
    "report_by_exception_truth": ({"max_rate_hz": 2.0, "deadbands": DEADBANDS}, []),
    "restart_inside_outage": ({}, []),
    "derived_metric_matches_truth": (
        {"metric": "vibration_rms_5s", "tag": "vibration_rms", "function": "rms", "window_s": 5}
        | {"poll_s": 0.2},
        [],
    ),
    "platform_line_identifiers": (
        {"secondary_prefix": "88.100.7", "enterprise_prefix": "88.100.7.1"},
        [answered("prefixes", []), answered("identifiers", [])],
    ),
    "platform_oee_matches_truth": (
        {"metric": "oee", "at": 41.5},
        [answered("series", {"points": []})],
    ),
    "platform_alarm_after_truth": (
        {"tag": "bearing_wear", "above": 62.72, "within_s": 6, "at": 30},
        [answered("alarms", [])],
    ),
    "platform_operations_alarms": ({"at": 32.5}, [answered("alarms", []), answered("rules", [])]),
    "artifact_series_matches_truth": ({"file": "power_1s.csv", "metric": "active_power"}, []),
    "artifact_shift_kpis_match_truth": ({"file": "shifts.csv", "metric": "active_power"}, []),
    "mosquitto_attacks": (
        {"attacks": MOSQUITTO_ATTACKS},
        [
            probe(name, name != "tls_modern", "refused: not authorised")
            for name in MOSQUITTO_ATTACKS
        ],
    ),
    "intrusion_detection": ({"parts": ["detections", "timeliness", "false_positives"]}, PLAYED),
}
# the plant a kind needs, where it is not the tank of the builders' datasheet
SHEETS: dict[str, Datasheet] = {
    "opcua_subscription": sheet("boiler", "net-02-opcua-data-access"),
    "opcua_units_published": sheet("boiler", "net-02-opcua-data-access"),
    "energy_used_matches_truth": sheet("energy", "net-03-energy-meter-registers"),
    "report_by_exception_truth": COMPRESSOR,
    "derived_metric_matches_truth": COMPRESSOR,
    "platform_alarm_after_truth": COMPRESSOR,
    "platform_oee_matches_truth": sheet("packaging", "plat-02-oee-app"),
    "artifact_series_matches_truth": sheet("energy", "plat-05-data-cleaning"),
    "artifact_shift_kpis_match_truth": sheet("energy", "plat-05-data-cleaning"),
}
ACTIONS: dict[str, tuple[ActionRecord, ...]] = {"restart_inside_outage": RESTART_IN_OUTAGE}


def case_sheet(kind: str) -> Datasheet:
    return SHEETS.get(kind, SHEET)


def case_actions(kind: str) -> tuple[ActionRecord, ...]:
    return ACTIONS.get(kind, SCENARIO)


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
        [],
        actions=case_actions(kind),
        probes=tuple(probes),
        gateway_exits=KILLED,
        truth_events=EVENTS,
    )
    outcome = run_check(kind, obs, datasheet=case_sheet(kind), **params)
    assert outcome.points == 0, outcome.message
    assert not outcome.message.startswith("lab error"), outcome.message
