"""platform_oee_matches_truth on a hand-made packaging line and hand-made APP answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from grader.checks.apps import LineTruth, window_figures
from grader.observation import ProbeRecord, TruthSeries
from tests.grader.builders import T0, observation, run_check, telemetry

pytestmark = pytest.mark.unit

WINDOW = 10_000
IDEAL_S = 1.0
QUERY = T0 + 39_000


def line_truth() -> TruthSeries:
    """Runs except 14-16 s after T0; a pack every 1.25 s of running (performance 0.8);
    every pack completed inside [4, 8) s of each 10 s is rejected."""
    samples = []
    good = rejects = 0
    run_ms = 0
    next_pack = 1250
    for ts in range(T0 - 2000, T0 + 42_000, 100):
        offset = ts - T0
        running = offset >= 0 and not 14_000 <= offset < 16_000
        if running:
            run_ms += 100
            if run_ms >= next_pack:
                next_pack += 1250
                if 4000 <= (ts % WINDOW) < 8000:
                    rejects += 1
                else:
                    good += 1
        samples.append(
            (
                ts,
                {
                    "state": 1 if running else 0,
                    "good_count": good,
                    "reject_count": rejects,
                    "ideal_cycle_time": IDEAL_S,
                },
            )
        )
    return TruthSeries(tuple(samples))


TRUTH = line_truth()
LINE = LineTruth.of(TRUTH)
assert LINE is not None
FIRST = -(-(T0 + 4000) // WINDOW) * WINDOW
STARTS = list(range(FIRST, QUERY - 3000 - WINDOW + 1, WINDOW))


def app_answer(metric: str, figure: Callable[[int], float], shift_ms: int = 0) -> ProbeRecord:
    points = [[start + shift_ms, figure(start)] for start in STARTS]
    body = {"points": points}
    return ProbeRecord("c", "series", QUERY, "HTTP 200", "HTTP 200", True, {"body": body})


def exact(metric: str, sample_lag_ms: int = 0) -> Callable[[int], float]:
    """What a right APP computes from data sampled up to sample_lag_ms late."""

    def figure(start: int) -> float:
        window = (start - sample_lag_ms, start + WINDOW - sample_lag_ms)
        return round(window_figures(LINE, WINDOW, window, window)[metric], 4)

    return figure


def grade(metric: str, record: ProbeRecord, first_data_ms: int = T0 + 800, **params: Any) -> Any:
    gateway = [telemetry(1, first_data_ms - 20, {"state": 1}, received=first_data_ms)]
    obs = observation(gateway, seconds=42, probes=(record,))
    obs = type(obs)(**{**obs.__dict__, "truth": TRUTH})
    return run_check("platform_oee_matches_truth", obs, metric=metric, **params)


@pytest.mark.parametrize("metric", ["availability", "performance", "quality", "oee"])
def test_a_right_app_passes_even_with_late_samples(metric: str) -> None:
    assert len(STARTS) >= 2
    for lag in (0, 200, 450):
        outcome = grade(metric, app_answer(metric, exact(metric, lag)))
        assert outcome.passed, (lag, outcome.message, outcome.evidence)


def test_oee_without_quality_fails() -> None:
    def no_quality(start: int) -> float:
        figures = window_figures(LINE, WINDOW, (start, start + WINDOW), (start, start + WINDOW))
        return figures["availability"] * figures["performance"]

    outcome = grade("oee", app_answer("oee", no_quality))
    assert not outcome.passed and outcome.points == 2.5  # written, but wrong
    # the window with 2 rejects among 8 packs is caught; one with a single reject may not be
    assert outcome.evidence["saw"]["windows"][1]["ok"] is False


def test_performance_from_the_wrong_ideal_cycle_fails() -> None:
    def measured_cycle(start: int) -> float:  # the 1.25 s actual cycle taken as ideal
        return exact("performance")(start) * 1.25 / IDEAL_S

    outcome = grade("performance", app_answer("performance", measured_cycle))
    assert not outcome.passed and outcome.points == 2.5


def test_misaligned_windows_fail_and_are_named() -> None:
    outcome = grade("availability", app_answer("availability", exact("availability"), 3000))
    assert outcome.points == 0
    assert outcome.evidence["saw"]["not_aligned"][0] == STARTS[0] + 3000


def test_no_answer_or_no_points_scores_zero() -> None:
    empty = ProbeRecord("c", "series", QUERY, "HTTP 200", "HTTP 404", False, {"status": 404})
    assert grade("oee", empty).points == 0
    assert (
        grade(
            "oee",
            app_answer("oee", exact("oee")).__class__(
                "c", "series", QUERY, "HTTP 200", "HTTP 200", True, {"body": {"points": "x"}}
            ),
        ).points
        == 0
    )


def test_the_truth_model() -> None:
    start = STARTS[0]  # T0 + 10..20 s window holds the 2 s stop
    figures = window_figures(LINE, WINDOW, (start, start + WINDOW), (start, start + WINDOW))
    assert figures["availability"] == pytest.approx(0.8, abs=0.02)
    assert figures["performance"] == pytest.approx(0.8, abs=0.15)
    assert 0.5 < figures["quality"] < 0.9
    assert figures["oee"] == pytest.approx(
        figures["availability"] * figures["performance"] * figures["quality"]
    )


def test_windows_before_the_gateways_first_message_are_not_graded() -> None:
    """A gateway slow to start on a busy machine: the APP has no data for the first window."""
    late = app_answer("availability", exact("availability"))
    late = ProbeRecord(
        "c",
        "series",
        QUERY,
        "HTTP 200",
        "HTTP 200",
        True,
        {"body": {"points": late.detail["body"]["points"][1:]}},
    )
    assert not grade("availability", late).passed
    outcome = grade("availability", late, first_data_ms=STARTS[0] + 3000)
    assert outcome.passed, outcome.evidence
    assert [w["window"] for w in outcome.evidence["saw"]["windows"]] == STARTS[1:]
