"""gateway_online, contract_conformance and deadband_heartbeat on hand-made observations."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from grader.observation import ActionRecord, ObservedMessage, ProbeRecord
from tests.grader.builders import (
    LAB,
    SHEET,
    T0,
    TENANT,
    ScriptedBroker,
    good_stream,
    observation,
    run_check,
    status,
    telemetry,
)

pytestmark = pytest.mark.unit

KILL = ActionRecord("gateway_kill", T0 + 20_000, T0 + 21_000)


def retained(ok: bool) -> ProbeRecord:
    return ProbeRecord("c", "retained_status", T0 + 3000, "retained online", "x", ok)


async def probe_status(broker: ScriptedBroker, **params: Any) -> ProbeRecord:
    from grader.checks.gateway import OnlineParams, probe_retained_status
    from grader.probes.context import ProbeContext

    records: list[ProbeRecord] = []
    context: ProbeContext[Any] = ProbeContext(
        "c",
        OnlineParams.model_validate(params),
        LAB,
        SHEET,
        TENANT,
        SHEET.device or "tank-1",
        broker,  # type: ignore[arg-type]
        time.monotonic(),
        records,
    )
    await probe_retained_status(context)
    assert len(records) == 1
    return records[0]


async def test_retained_probe_waits_for_a_gateway_that_comes_online_late() -> None:
    # a busy machine: nothing at the first two looks, then the retained 'online'
    broker = ScriptedBroker([None, None, status("online", T0 + 6000, retain=True)])
    record = await probe_status(broker, retained_probe_at=0, online_within_s=1.5)
    assert record.ok and broker.subscriptions == 3 and record.detail["subscriptions"] == 3


async def test_retained_probe_fails_a_live_only_or_missing_status() -> None:
    live = [status("online", T0 + 100 * i) for i in range(20)]
    record = await probe_status(
        ScriptedBroker(live), retained_probe_at=0, online_within_s=0.5, retained_wait_s=0.5
    )
    assert not record.ok and record.saw == "retain=False state=online"
    record = await probe_status(
        ScriptedBroker([]), retained_probe_at=0, online_within_s=0.5, retained_wait_s=0.5
    )
    assert not record.ok and record.saw == "nothing retained"


async def test_retained_offline_is_not_accepted_as_online() -> None:
    offline = [status("offline", T0, retain=True) for _ in range(20)]
    record = await probe_status(
        ScriptedBroker(offline), retained_probe_at=0, online_within_s=0.5, retained_wait_s=0.5
    )
    assert not record.ok and record.saw == "retain=True state=offline"


def test_online_with_will_and_restart() -> None:
    messages = [
        status("online", T0 + 300),
        status("offline", T0 + 20_050),
        status("online", T0 + 21_800),
    ]
    obs = observation(messages, actions=(KILL,), probes=(retained(True),))
    outcome = run_check("gateway_online", obs, points=12)
    assert outcome.passed and outcome.points == 12
    assert outcome.evidence["kills"][0]["offline_ms"] == T0 + 20_050


def test_no_last_will_loses_its_part() -> None:
    messages = [status("online", T0 + 300), status("online", T0 + 21_800)]
    obs = observation(messages, actions=(KILL,), probes=(retained(True),))
    outcome = run_check("gateway_online", obs, points=12)
    assert not outcome.passed and outcome.points == 9.0
    assert "Last Will" in outcome.message


def test_an_offline_after_the_restart_is_not_the_last_will() -> None:
    """A gateway without a Will that says 'offline' itself when the run ends (SIGTERM),
    within will_within_s of the kill but after it came back online: no Will was seen."""
    messages = [
        status("online", T0 + 300),
        status("online", T0 + 22_500),
        status("offline", T0 + 27_600),  # its own goodbye at the end of the run
    ]
    obs = observation(messages, actions=(KILL,), probes=(retained(True),))
    outcome = run_check("gateway_online", obs, points=12)
    assert not outcome.passed and outcome.points == 9.0
    assert outcome.evidence["kills"][0]["offline_ms"] is None


def test_not_retained_and_late_online() -> None:
    obs = observation([status("online", T0 + 15_000)], probes=(retained(False),))
    outcome = run_check("gateway_online", obs, points=10, online_within_s=10)
    assert outcome.points == 0


def test_contract_conformance_counts_every_violation() -> None:
    good = good_stream(seconds=5)
    assert run_check("contract_conformance", observation(good)).passed
    bad = [
        ObservedMessage("iiot/alice/tank-1/telemetry", b'{"v":1,"device":"tank-1"}', T0 + 1),
        telemetry(99, (T0 + 2000) // 1000, {"level": 1.0}),  # ts in seconds
        ObservedMessage(
            "iiot/alice/tank-1/telemetry",
            json.dumps({"v": 1, "device": "pump-9", "seq": 1, "ts": T0, "metrics": {}}).encode(),
            T0 + 5,
        ),
        ObservedMessage("iiot/alice/tank-1/status", b'{"v":1,"state":"up","ts":1}', T0 + 6),
        ObservedMessage("iiot/alice/tank-1/cmd", b"grader's own command: not graded", T0 + 7),
    ]
    outcome = run_check("contract_conformance", observation(good + bad), points=8)
    assert not outcome.passed and outcome.points == 2.0
    reasons = [v["reason"] for v in outcome.evidence["saw"]]
    assert outcome.evidence["violations"] == 4
    assert any("seq" in r for r in reasons)
    assert any("seconds" in r for r in reasons)
    assert any("pump-9" in r for r in reasons)


def by_exception(seconds: int, heartbeat_ms: int | None) -> list[ObservedMessage]:
    """level changes every second; the constant metrics only come with a heartbeat."""
    out: list[ObservedMessage] = []
    last_full: int | None = None
    for seq, ts in enumerate(range(T0 + 500, T0 + seconds * 1000, 1000), start=1):
        metrics: dict[str, object] = {"level": 1.0 + (ts - T0) / 10_000}
        due = heartbeat_ms is not None and last_full is not None and ts - last_full >= heartbeat_ms
        if last_full is None or due:
            metrics.update(flow=50.0, pump_speed_sp=40.0, pump_on=True)
            last_full = ts
        out.append(telemetry(seq, ts, metrics))  # type: ignore[arg-type]
    return out


def test_heartbeat_present_passes_missing_fails() -> None:
    ok = run_check(
        "deadband_heartbeat", observation(by_exception(30, 5000)), heartbeat_s=5, slack_s=2
    )
    assert ok.passed, ok.evidence
    missing = run_check(
        "deadband_heartbeat", observation(by_exception(30, None)), heartbeat_s=5, slack_s=2
    )
    assert not missing.passed and missing.points == 5.0
    assert {s["metric"] for s in missing.evidence["saw"]["silences"]} == {
        "flow",
        "pump_speed_sp",
        "pump_on",
    }


def test_outage_windows_excuse_silence() -> None:
    messages = [m for m in by_exception(30, 5000) if not T0 + 8000 <= m.received_ms <= T0 + 20_000]
    outage = ActionRecord("broker_outage", T0 + 8000, T0 + 14_000)
    assert run_check(
        "deadband_heartbeat",
        observation(messages, actions=(outage,)),
        heartbeat_s=5,
        outage_margin_s=6,
    ).passed
    assert not run_check("deadband_heartbeat", observation(messages), heartbeat_s=5).passed


def test_deadband_violations_and_flood() -> None:
    tiny = []
    for i, ts in enumerate(range(T0 + 500, T0 + 30_000, 1000)):
        metrics = {"level": 1.0 + i * 0.001}
        if i % 5 == 0:
            metrics.update(flow=50.0)
        tiny.append(telemetry(i + 1, ts, metrics))
    outcome = run_check("deadband_heartbeat", observation(tiny), deadband={"level": 0.01})
    assert not outcome.passed and outcome.evidence["saw"]["deadband_violations"]
    flood = [telemetry(i, T0 + 500 + i * 50, {"level": 1.0 + i}) for i in range(500)]
    assert not run_check("deadband_heartbeat", observation(flood), max_rate_hz=5).passed
