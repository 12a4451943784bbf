"""no_loss_across_broker_outage and plc_outage_recovery on hand-made observations."""

from __future__ import annotations

import json

import pytest

from grader.observation import ActionRecord, GatewayExit, ObservedMessage
from tests.grader.builders import T0, observation, run_check, telemetry

pytestmark = pytest.mark.unit

OUTAGE = ActionRecord("broker_outage", T0 + 8000, T0 + 12_000)
PLC = ActionRecord("plc_outage", T0 + 16_000, T0 + 22_000)


def through_outage(
    *, buffer: bool, mark: bool = True, keep_ts: bool = True
) -> list[ObservedMessage]:
    out = []
    for seq, ts in enumerate(range(T0 + 500, T0 + 30_000, 1000), start=1):
        inside = OUTAGE.started_ms <= ts <= OUTAGE.ended_ms
        if inside and not buffer:
            continue  # lost (seq still counted by the gateway: a gap)
        received = OUTAGE.ended_ms + 300 + seq if inside else ts + 20
        sent_ts = ts if keep_ts or not inside else received - 5
        out.append(
            telemetry(seq, sent_ts, {"level": 1.0}, received=received, replayed=inside and mark)
        )
    return out


def test_store_and_forward_passes() -> None:
    obs = observation(through_outage(buffer=True), actions=(OUTAGE,))
    outcome = run_check("no_loss_across_broker_outage", obs, points=15)
    assert outcome.passed and outcome.points == 15
    assert outcome.evidence["saw"]["outages"][0]["marked_replayed"] == 4


def test_no_buffer_loses_everything_but_nothing_else() -> None:
    obs = observation(through_outage(buffer=False), actions=(OUTAGE,))
    outcome = run_check("no_loss_across_broker_outage", obs, points=15)
    assert outcome.points == 0 and outcome.evidence["saw"]["gaps"] == [[9, 12]]


def test_replay_without_mark_or_with_new_ts_loses_parts() -> None:
    unmarked = run_check(
        "no_loss_across_broker_outage",
        observation(through_outage(buffer=True, mark=False), actions=(OUTAGE,)),
        points=8,
    )
    assert unmarked.points == 6.0 and "replayed=true" in unmarked.message
    restamped = run_check(
        "no_loss_across_broker_outage",
        observation(through_outage(buffer=True, keep_ts=False), actions=(OUTAGE,)),
        points=8,
    )
    assert not restamped.passed


def test_without_the_scenario_step_it_says_lab_error() -> None:
    outcome = run_check("no_loss_across_broker_outage", observation([]))
    assert outcome.points == 0 and outcome.message.startswith("lab error")


def plc_stream(stale: bool) -> list[ObservedMessage]:
    out = []
    for seq, ts in enumerate(range(T0 + 500, T0 + 30_000, 1000), start=1):
        down = PLC.started_ms + 3000 <= ts <= PLC.ended_ms
        if down and not stale:
            out.append(telemetry(seq, ts, {}, quality={"level": "bad"}))
        else:
            out.append(telemetry(seq, ts, {"level": 1.0}))
    return out


def outage_stream(good_until_s: float, bad_from_s: float | None) -> list[ObservedMessage]:
    """Good values sampled until `good_until_s` into the outage, then 'bad' from `bad_from_s`
    (None: never), then good again after it."""
    out = []
    for seq, ts in enumerate(range(T0 + 500, T0 + 30_000, 500), start=1):
        into = (ts - PLC.started_ms) / 1000
        if into >= 0 and ts <= PLC.ended_ms and into > good_until_s:
            bad = bad_from_s is not None and into >= bad_from_s
            out.append(telemetry(seq, ts, {}, quality={"level": "bad"} if bad else None))
        else:
            out.append(telemetry(seq, ts, {"level": 1.0}))
    return out


def stale_part(messages: list[ObservedMessage]) -> bool:
    outcome = run_check("plc_outage_recovery", observation(messages, actions=(PLC,)))
    return bool(outcome.evidence["saw"]["outages"][0]["stale_good"]) is False


def test_good_values_until_the_gateway_detects_the_outage_are_excused() -> None:
    # a busy machine: the read timed out late, the first 'bad' came 4.5 s in
    assert stale_part(outage_stream(good_until_s=4.0, bad_from_s=4.5))
    # without any 'bad' report, good values past grace_s (3.5 s) are stale
    assert not stale_part(outage_stream(good_until_s=4.0, bad_from_s=None))
    # the detection excuse ends at detect_cap_s (7 s)
    assert not stale_part(outage_stream(good_until_s=7.5, bad_from_s=8.0))


def test_good_values_after_the_first_bad_report_are_stale() -> None:
    messages = outage_stream(good_until_s=-1, bad_from_s=0)
    bad_then_good = []
    for message in messages:
        data = json.loads(message.payload)
        into = (data["ts"] - PLC.started_ms) / 1000
        if 4.0 <= into <= 5.0:  # it said 'bad', then good again while still down
            message = telemetry(data["seq"], data["ts"], {"level": 1.0})
        bad_then_good.append(message)
    assert not stale_part(bad_then_good)


def test_plc_outage_recovery() -> None:
    good = run_check("plc_outage_recovery", observation(plc_stream(False), actions=(PLC,)))
    assert good.passed, good.evidence
    stale = run_check("plc_outage_recovery", observation(plc_stream(True), actions=(PLC,)))
    assert stale.points == 7.5 and stale.evidence["saw"]["outages"][0]["stale_good"]
    gone = [m for m in plc_stream(False) if m.received_ms < PLC.started_ms]
    crashed = observation(gone, actions=(PLC,), gateway_exits=(GatewayExit(T0 + 19_000, 1, False),))
    outcome = run_check("plc_outage_recovery", crashed)
    # a gateway that died at the outage said nothing during it: no part for its silence
    assert outcome.points == 0 and outcome.evidence["saw"]["crashes"][0]["returncode"] == 1
