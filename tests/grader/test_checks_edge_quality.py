"""Unit tests of the edge quality checks (edge-02/03/04) on hand-made observations."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from grader.checks.registry import CheckOutcome
from grader.observation import ActionRecord, ObservedMessage, TruthSeries
from tests.grader.builders import T0, level_at, observation, run_check, telemetry

LEVEL = {"level": 0.05}


def _polled(
    period_ms: int, deadband: float | None, heartbeat_ms: int = 10_000
) -> list[ObservedMessage]:
    """A gateway polling level every period_ms, reporting past `deadband` (None: every
    poll) and on a heartbeat."""
    out: list[ObservedMessage] = []
    last: float | None = None
    last_sent = T0
    for ts in range(T0 + 250, T0 + 30_000, period_ms):
        value = level_at(ts - 50)
        due = ts - last_sent >= heartbeat_ms
        if last is None or due or deadband is None or abs(value - last) > deadband:
            out.append(telemetry(len(out) + 1, ts, {"level": value}))
            last, last_sent = value, ts
    return out


def test_exception_reporting_within_the_deadband_passes() -> None:
    outcome = run_check(
        "report_by_exception_truth", observation(_polled(250, 0.04)), deadbands=LEVEL, max_rate_hz=4
    )
    assert outcome.passed, outcome.message
    assert outcome.evidence["saw"]["tags"]["level"]["missed"] == 0


def test_heartbeat_only_misses_changes_but_keeps_the_budget() -> None:
    outcome = run_check(
        "report_by_exception_truth",
        observation(_polled(250, 1e9, heartbeat_ms=5000)),
        deadbands=LEVEL,
        max_rate_hz=4,
    )
    assert not outcome.passed
    assert "level: " in outcome.message and "budget" not in outcome.message
    assert outcome.evidence["saw"]["tags"]["level"]["missed"] >= 3
    assert outcome.points == 5.0  # the budget part (weight 1 of 2)


def test_a_deadband_wider_than_allowed_misses_changes() -> None:
    outcome = run_check(
        "report_by_exception_truth", observation(_polled(250, 0.3)), deadbands=LEVEL, max_rate_hz=4
    )
    assert not outcome.passed
    assert outcome.evidence["saw"]["tags"]["level"]["longest_unreported_s"] > 1.3


def _step_truth() -> TruthSeries:
    """level 1.0, 2.0 from T0+10.3 s, 1.0 again from T0+20.3 s (ticks of 100 ms)."""
    return TruthSeries(
        tuple(
            (ts, {"level": 2.0 if T0 + 10_300 <= ts < T0 + 20_300 else 1.0})
            for ts in range(T0 - 2000, T0 + 30_000, 100)
        )
    )


def _slow_poller(stamp_back_ms: int) -> list[ObservedMessage]:
    """Reads level every 2.5 s from T0+250 and reports each change when it reads it, with
    ts `stamp_back_ms` before the read and arrival 20 ms after the read."""
    out: list[ObservedMessage] = []
    last = None
    for read in range(T0 + 250, T0 + 30_000, 2500):
        value = _step_truth().value_at("level", read)
        if value != last:
            out.append(
                telemetry(len(out) + 1, read - stamp_back_ms, {"level": value}, received=read + 20)
            )
            last = value
    return out


def test_a_report_stamped_before_the_change_it_carries_counts_from_its_arrival() -> None:
    """Each change is read 2.45 s late; stamping the report 2.5 s back (the previous read,
    before the change) would make the change look reported at once. The simulator did not
    serve the reported value at that ts, so the report counts from its arrival, and both
    changes are late."""
    for stamp_back_ms in (0, 2500):
        obs = replace(observation(_slow_poller(stamp_back_ms)), truth=_step_truth())
        outcome = run_check("report_by_exception_truth", obs, deadbands=LEVEL, max_rate_hz=4)
        assert not outcome.passed, stamp_back_ms
        level = outcome.evidence["saw"]["tags"]["level"]
        assert level["missed"] == 2 and level["longest_unreported_s"] > 2.4


def test_a_report_read_long_after_its_ts_counts_from_its_arrival() -> None:
    """A busy gateway whose reads lag their ts by 0.5 s (values from later than ts) still
    passes: each report counts from its arrival, which is within the limit."""
    lagging = [
        telemetry(
            i + 1,
            json.loads(m.payload)["ts"] - 500,
            json.loads(m.payload)["metrics"],
            received=m.received_ms,
        )
        for i, m in enumerate(_polled(250, 0.04))
    ]
    outcome = run_check(
        "report_by_exception_truth", observation(lagging), deadbands=LEVEL, max_rate_hz=4
    )
    assert outcome.passed, outcome.message


def test_every_poll_sent_blows_the_budget() -> None:
    outcome = run_check(
        "report_by_exception_truth",
        observation(_polled(100, None)),
        deadbands=LEVEL,
        max_rate_hz=2,
        parts=["budget"],
    )
    assert not outcome.passed and outcome.points == 0
    assert outcome.evidence["saw"]["rate_hz"] > 9


def test_silence_earns_no_budget() -> None:
    outcome = run_check(
        "report_by_exception_truth",
        observation([]),
        deadbands=LEVEL,
        max_rate_hz=2,
        parts=["budget"],
    )
    assert outcome.points == 0


# -- restart inside an outage --------------------------------------------------------------

OUTAGE = ActionRecord("broker_outage", T0 + 8_000, T0 + 20_000)
KILL = ActionRecord("gateway_kill", T0 + 12_000, T0 + 14_000)


def _restart_run(
    *, keep_buffer: bool = True, keep_seq: bool = True, flag: bool = True
) -> list[ObservedMessage]:
    """One reading a second; readings sampled in the outage arrive at 20.5 s, replayed."""
    out: list[ObservedMessage] = []
    seq = 0
    for second in range(1, 30):
        ts = T0 + second * 1000
        if KILL.started_ms <= ts < KILL.ended_ms:
            continue  # the gateway is dead
        if ts >= KILL.ended_ms and seq and not keep_seq and second == 14:
            seq = 0
        seq += 1
        inside = OUTAGE.started_ms <= ts <= OUTAGE.ended_ms
        if inside and ts < KILL.started_ms and not keep_buffer:
            continue  # numbered, buffered in memory, lost with the process
        received = OUTAGE.ended_ms + 500 + second if inside else ts + 20
        out.append(
            telemetry(seq, ts, {"level": level_at(ts)}, received=received, replayed=inside and flag)
        )
    return out


def _restart_check(messages: list[ObservedMessage], **params: object) -> CheckOutcome:
    obs = observation(messages, actions=(OUTAGE, KILL))
    return run_check("restart_inside_outage", obs, significant_change=0.05, hold_s=1, **params)


def test_a_buffer_on_disk_passes_every_part() -> None:
    outcome = _restart_check(_restart_run())
    assert outcome.passed, outcome.message


def test_a_buffer_in_memory_loses_only_no_loss() -> None:
    messages = _restart_run(keep_buffer=False)
    assert not _restart_check(messages, parts=["no_loss"]).passed
    assert _restart_check(messages, parts=["seq"]).passed
    assert _restart_check(messages, parts=["replay"]).passed


def test_seq_restarting_after_the_restart_loses_only_seq() -> None:
    messages = _restart_run(keep_seq=False)
    seq = _restart_check(messages, parts=["seq"])
    assert not seq.passed
    assert seq.evidence["saw"]["reused"]
    assert _restart_check(messages, parts=["no_loss"]).passed
    assert _restart_check(messages, parts=["replay"]).passed


def test_a_redelivery_with_the_same_seq_and_ts_is_not_a_duplicate() -> None:
    messages = _restart_run()
    messages.append(replace(messages[3], received_ms=messages[3].received_ms + 5))
    outcome = _restart_check(messages, parts=["seq"])
    assert outcome.passed
    assert outcome.evidence["saw"]["redelivered"] == 1


def test_a_backlog_without_the_replayed_flag_loses_replay() -> None:
    messages = _restart_run(flag=False)
    assert not _restart_check(messages, parts=["replay"]).passed
    assert _restart_check(messages, parts=["no_loss", "seq"]).passed


def test_no_kill_inside_the_outage_is_a_lab_error() -> None:
    obs = observation(_restart_run(), actions=(OUTAGE,))
    outcome = run_check("restart_inside_outage", obs)
    assert outcome.points == 0 and outcome.message.startswith("lab error")


# -- derived metrics -----------------------------------------------------------------------


def _bursts() -> TruthSeries:
    """10 Hz: 2 s at 12, 2 s at 1.2, with a little deterministic ripple."""
    samples = []
    for index in range(-20, 300):
        ts = T0 + index * 100
        base = 12.0 if (index // 20) % 2 else 1.2
        samples.append((ts, {"level": round(base * (1 + 0.02 * math.sin(index)), 4)}))
    return TruthSeries(tuple(samples))


def _derived(
    function: str, window_s: float, every: int = 2, publish_every: int | None = None
) -> list[ObservedMessage]:
    """Values over the samples a poller every `every` ticks read, published every
    `publish_every` ticks (default: every poll)."""
    truth = _bursts()
    out = []
    for index in range(0, 300, publish_every or every):
        ts = T0 + index * 100 + 30
        window = [float(v["level"]) for t, v in truth.samples if ts - window_s * 1000 <= t <= ts][
            ::every
        ]
        value = (
            math.sqrt(sum(x * x for x in window) / len(window))
            if function == "rms"
            else sum(window) / len(window)
        )
        out.append(telemetry(len(out) + 1, ts, {"vibration_rms_5s": round(value, 4)}))
    return out


def _derived_check(messages: list[ObservedMessage]) -> CheckOutcome:
    obs = replace(observation(messages), truth=_bursts())
    return run_check(
        "derived_metric_matches_truth",
        obs,
        metric="vibration_rms_5s",
        tag="level",
        function="rms",
        window_s=5,
        poll_s=0.2,
    )


def test_the_rms_of_the_polled_samples_passes() -> None:
    outcome = _derived_check(_derived("rms", 5))
    assert outcome.passed, outcome.message


def test_the_mean_instead_of_the_rms_fails() -> None:
    outcome = _derived_check(_derived("mean", 5))
    assert not outcome.passed
    assert outcome.evidence["saw"]["right"] < outcome.evidence["saw"]["graded"] / 2


def test_publishing_seldom_widens_the_ranges_no_further_than_a_slowed_poll() -> None:
    """Read every 0.2 s, published every 1 s (or 2 s): the ranges assume a poll at most
    twice the lab's, not one per published value; the RMS passes, the mean fails."""
    for every_s in (10, 20):
        rms = _derived_check(_derived("rms", 5, publish_every=every_s))
        assert rms.passed and rms.evidence["saw"]["poll_s"] == 0.4
        assert not _derived_check(_derived("mean", 5, publish_every=every_s)).passed


def test_a_gateway_slowed_to_half_the_polls_still_passes() -> None:
    assert _derived_check(_derived("rms", 5, every=4)).passed


def test_a_window_of_the_wrong_length_fails() -> None:
    outcome = _derived_check(_derived("rms", 2))
    assert not outcome.passed


def test_no_derived_metric_earns_nothing() -> None:
    outcome = _derived_check(_polled(250, 0.04))
    assert outcome.points == 0
