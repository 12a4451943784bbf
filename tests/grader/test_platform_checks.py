"""Platform checks on hand-made probe records (what the platform API answered) and truth."""

from __future__ import annotations

from typing import Any

import pytest

from grader.observation import Observation, ProbeRecord, TruthEvent
from tests.grader.builders import DEVICE, T0, TENANT, level_at, observation, run_check

pytestmark = pytest.mark.unit


def answered(name: str, body: Any, status: int = 200, **detail: Any) -> ProbeRecord:
    return ProbeRecord(
        "c",
        name,
        T0 + 28_000,
        "HTTP 200",
        f"HTTP {status}",
        status == 200,
        {"status": status, "body": body, **detail},
    )


def with_probes(*records: ProbeRecord, events: tuple[TruthEvent, ...] = ()) -> Observation:
    return observation([], probes=records, truth_events=events)


def alarm(raised_ms: int, metric: str = "level", device: str = DEVICE) -> dict[str, Any]:
    return {
        "id": "a1",
        "tenant": TENANT,
        "device": device,
        "rule": "level high",
        "metric": metric,
        "state": "active",
        "raised_ms": raised_ms,
    }


EVENT = TruthEvent(T0 + 10_000, "overflow", DEVICE, {"metric": "level"})


def test_alarm_within_window_passes_with_delay_evidence() -> None:
    obs = with_probes(answered("alarms", [alarm(T0 + 12_500)]), events=(EVENT,))
    outcome = run_check("platform_alarm_raised", obs, metric="level", within_s=5)
    assert outcome.passed and outcome.points == 10
    saw = outcome.evidence["saw"]
    assert (saw["event_ts"], saw["alarm_ts"], saw["delay_ms"]) == (T0 + 10_000, T0 + 12_500, 2500)


def test_late_alarm_gets_partial_credit_and_wrong_metric_none() -> None:
    late = with_probes(answered("alarms", [alarm(T0 + 25_000)]), events=(EVENT,))
    outcome = run_check("platform_alarm_raised", late, metric="level", within_s=5)
    assert not outcome.passed and outcome.points == 3.33  # an alarm, not in time
    assert outcome.evidence["saw"]["delay_ms"] == 15_000
    other = with_probes(answered("alarms", [alarm(T0 + 11_000, metric="flow")]), events=(EVENT,))
    outcome = run_check("platform_alarm_raised", other, metric="level", event="overflow")
    assert outcome.points == 0 and outcome.evidence["saw"]["alarm_ts"] is None
    # the scenario event is the grader's doing: it earns nothing without an alarm
    nothing = with_probes(answered("alarms", []), events=(EVENT,))
    assert run_check("platform_alarm_raised", nothing, metric="level").points == 0


def test_alarm_check_without_platform_answer_scores_zero() -> None:
    down = ProbeRecord("c", "alarms", T0, "a running platform", "no platform", False)
    outcome = run_check("platform_alarm_raised", with_probes(down), metric="level")
    assert outcome.points == 0 and "no platform" in outcome.message
    outcome = run_check("platform_alarm_raised", with_probes(), metric="level")
    assert outcome.points == 0 and outcome.evidence["where"] == "GET /api/alarms"


def test_identifier_resolving_to_the_device_passes() -> None:
    body = {"identifier": "88.100.1/PUMP-1", "tenant": TENANT, "device": DEVICE}
    obs = with_probes(answered("resolve", body))
    outcome = run_check("platform_identifier_resolves", obs, identifier="88.100.1/PUMP-1")
    assert outcome.passed and outcome.points == 10
    assert outcome.evidence["saw"]["device"] == DEVICE


def test_identifier_bound_elsewhere_or_missing_is_named() -> None:
    body = {"identifier": "88.100.1/PUMP-1", "tenant": TENANT, "device": "tank-2"}
    obs = with_probes(answered("resolve", body))
    outcome = run_check("platform_identifier_resolves", obs, identifier="88.100.1/PUMP-1")
    assert outcome.points == 5.0 and "bound to device tank-1" in outcome.message
    missing = with_probes(answered("resolve", {"detail": "not registered"}, status=404))
    outcome = run_check("platform_identifier_resolves", missing, identifier="88.100.1/PUMP-1")
    assert outcome.points == 0 and outcome.evidence["saw"]["detail"] == "not registered"


def buckets(how: str, start: int, count: int = 4, interval: int = 5000) -> list[list[float]]:
    out = []
    for ts in range(start, start + count * interval, interval):
        values = [level_at(t) for t in range(ts, ts + interval, 100)]
        agg = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}[how]
        out.append([ts, round(agg, 4)])
    return out


@pytest.mark.parametrize("how", ["mean", "min", "max"])
def test_aggregate_equal_to_truth_passes(how: str) -> None:
    body = {"points": buckets(how, T0 + 5000)}
    record = answered("series", body, interval=5000, start=T0 + 5000, end=T0 + 25_000)
    outcome = run_check(
        "platform_aggregate_matches_truth", with_probes(record), metric="level", aggregation=how
    )
    assert outcome.passed, outcome.evidence
    assert outcome.evidence["saw"]["matching"] == 1.0
    assert len(outcome.evidence["saw"]["buckets"]) == 4


def test_aggregate_wrong_kind_or_empty_fails_with_evidence() -> None:
    body = {"points": buckets("max", T0 + 5000)}  # the platform answered max for a mean query
    record = answered("series", body, interval=5000)
    outcome = run_check(
        "platform_aggregate_matches_truth", with_probes(record), metric="level", aggregation="mean"
    )
    assert not outcome.passed and outcome.points == 2.5
    wrong = outcome.evidence["saw"]["first_wrong"][0]
    assert wrong["saw"] > wrong["expected"] + wrong["tolerance"]
    empty = answered("series", {"points": []}, interval=5000)
    outcome = run_check("platform_aggregate_matches_truth", with_probes(empty), metric="level")
    assert outcome.points == 0 and outcome.evidence["saw"]["buckets"] == []


def test_unknown_params_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        run_check("platform_aggregate_matches_truth", with_probes(), metric="level", bogus=1)
