"""no_loss_across_broker_outage judged by the grader's own outage record and the truth.

A correct gateway that reconnects quickly, a gateway that re-stamps its backlog, and a
deadband-only gateway on a quiet plant or on one that surely changed during the outage.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from grader.observation import ActionRecord, Observation, ObservedMessage, TruthSeries
from tests.grader.builders import T0, observation, run_check, telemetry

pytestmark = pytest.mark.unit

CUT, RESTORE = T0 + 8000, T0 + 14_000
OUTAGE = ActionRecord("broker_outage", CUT, RESTORE)
RECONNECT = RESTORE + 10  # the gateway is back 10 ms after the grader restores the link


def poller(*, restamp: bool = False, period_ms: int = 500) -> list[ObservedMessage]:
    """Polls every 500 ms, buffers while offline, replays the backlog on reconnect.

    The sample taken 140 ms before the reconnect is replayed 150 ms after its ts.
    """
    out = []
    backlog = []
    for seq, ts in enumerate(range(T0 + 500, T0 + 30_000, period_ms), start=1):
        if CUT <= ts < RECONNECT:
            backlog.append((seq, ts))
            continue
        if backlog and ts >= RECONNECT:
            for position, (old_seq, old_ts) in enumerate(backlog):
                received = RECONNECT + 140 - len(backlog) + 1 + position  # last: ts + 150
                stamp = received - 2 if restamp else old_ts
                out.append(
                    telemetry(old_seq, stamp, {"level": 1.5}, received=received, replayed=True)
                )
            backlog = []
        received = ts + 20 if ts < CUT else max(ts + 20, RECONNECT + 200)
        out.append(telemetry(seq, ts, {"level": 1.5}, received=received))
    return out


def test_a_fast_reconnect_keeps_full_marks() -> None:
    messages = poller()
    last = max((m for m in messages if m.json()["replayed"]), key=lambda m: m.json()["ts"])
    assert last.received_ms - last.json()["ts"] == 150  # what the old 200 ms rule failed
    outcome = run_check("no_loss_across_broker_outage", observation(messages, actions=(OUTAGE,)))
    assert outcome.passed and outcome.points == 10, outcome.message


def test_a_restamping_gateway_loses_the_ts_part_only() -> None:
    outcome = run_check(
        "no_loss_across_broker_outage",
        observation(poller(restamp=True), actions=(OUTAGE,)),
        points=8,
    )
    assert outcome.points == 6.0, outcome.message  # seq (2) + replayed=true (1) of 4
    assert "keep their sampling ts (0 of 13" in outcome.message
    window = outcome.evidence["saw"]["outages"][0]
    assert window["marked_replayed"] == 13 and window["replayed_ts_after_restore"]


def quiet(level_during_outage: float = 1.5) -> TruthSeries:
    """A still plant; the level reads level_during_outage from 2 s to 4 s into the outage."""
    samples = []
    for ts in range(T0 - 2000, T0 + 30_000, 100):
        spike = CUT + 2000 <= ts < CUT + 4000
        level = level_during_outage if spike else 1.5
        samples.append((ts, {"level": level, "flow": 50.0, "pump_speed_sp": 40.0}))
    return TruthSeries(tuple(samples))


def deadband_only(*, sampled_in_outage: bool) -> list[ObservedMessage]:
    """Reports only changes: once at start, once after the outage (or also inside it)."""
    out = [telemetry(1, T0 + 500, {"level": 1.5}), telemetry(2, T0 + 4000, {"level": 1.5})]
    seq = 3
    if sampled_in_outage:
        for ts, level in ((CUT + 2100, 3.0), (CUT + 4100, 1.5)):
            out.append(
                telemetry(seq, ts, {"level": level}, received=RECONNECT + seq, replayed=True)
            )
            seq += 1
    out.append(telemetry(seq, T0 + 20_000, {"level": 1.5}))
    return out


def with_truth(messages: list[ObservedMessage], truth: TruthSeries) -> Observation:
    return replace(observation(messages, actions=(OUTAGE,)), truth=truth)


def test_a_deadband_only_gateway_on_a_quiet_plant_had_nothing_to_replay() -> None:
    outcome = run_check(
        "no_loss_across_broker_outage", with_truth(deadband_only(sampled_in_outage=False), quiet())
    )
    assert outcome.passed and outcome.points == 10, outcome.message
    window = outcome.evidence["saw"]["outages"][0]
    assert window["plant_change"] is None and window["judged"].startswith("no")


def test_when_the_plant_surely_changed_nothing_replayed_means_lost() -> None:
    spiked = quiet(level_during_outage=3.0)  # 1.5 m for 2 s: 30 % of the 0-5 m range
    lost = run_check(
        "no_loss_across_broker_outage", with_truth(deadband_only(sampled_in_outage=False), spiked)
    )
    assert lost.points == 5.0 and "lost: level changed" in lost.message  # seq part only
    assert lost.evidence["saw"]["outages"][0]["plant_change"]["tag"] == "level"
    kept = run_check(
        "no_loss_across_broker_outage", with_truth(deadband_only(sampled_in_outage=True), spiked)
    )
    assert kept.passed, kept.message


def test_a_short_blip_below_hold_time_requires_nothing() -> None:
    blip = list(quiet().samples)
    blip = [
        (ts, {**v, "level": 3.0}) if CUT + 2000 <= ts < CUT + 2500 else (ts, v) for ts, v in blip
    ]
    outcome = run_check(
        "no_loss_across_broker_outage",
        with_truth(deadband_only(sampled_in_outage=False), TruthSeries(tuple(blip))),
    )
    assert outcome.passed, outcome.message


def test_seq_counts_only_across_the_outage() -> None:
    """One message before the cut and nothing after is no contiguous seq to speak of."""
    early = [m for m in poller() if m.received_ms < CUT]
    outcome = run_check("no_loss_across_broker_outage", with_truth(early, quiet()))
    assert outcome.points == 0 and "no messages on both sides" in outcome.message
