"""energy_used_matches_truth on hand-made observations with a counter rollover."""

from __future__ import annotations

import json
from typing import Any

from grader.checks.energy import CounterTruth, counter_wrap
from grader.checks.registry import CheckContext, CheckOutcome, default_registry
from grader.observation import Observation, ObservedMessage, TruthSeries
from grader.spec import Bilingual, CheckSpec
from simulators.variants import build_datasheet
from tests.grader.builders import LAB, T0, TENANT

SHEET = build_datasheet("energy", "net-03-energy-meter-registers", TENANT, "test-secret")
DEVICE = SHEET.device or "energy-1"
WRAP, COUNT = counter_wrap(SHEET, "energy")
KW = 72.0  # constant load: 0.02 kWh per second
START = WRAP - 10 * KW / 3600  # rolls over 10 s after T0


def energy_at(ts: int) -> float:
    return round((START + KW * (ts - T0) / 3_600_000) % WRAP, 4)


def truth(seconds: int = 20) -> TruthSeries:
    return TruthSeries(
        tuple((ts, {"energy": energy_at(ts)}) for ts in range(T0, T0 + seconds * 1000, 100))
    )


def used_since(first_ts: int, ts: int) -> float:
    return KW * (ts - first_ts) / 3_600_000


def report(seq: int, ts: int, used: float) -> ObservedMessage:
    payload = {"v": 1, "device": DEVICE, "seq": seq, "ts": ts, "metrics": {"energy_used_kwh": used}}
    return ObservedMessage(f"iiot/{TENANT}/{DEVICE}/telemetry", json.dumps(payload).encode(), ts)


def stream(used: Any, first_ts: int = T0 + 2000, seconds: int = 17) -> list[ObservedMessage]:
    times = range(first_ts, T0 + seconds * 1000, 1000)
    return [report(i + 1, ts, used(first_ts, ts)) for i, ts in enumerate(times)]


def run(messages: list[ObservedMessage], **params: Any) -> CheckOutcome:
    obs = Observation(
        tenant=TENANT,
        device=DEVICE,
        started_ms=T0,
        finished_ms=T0 + 20_000,
        messages=tuple(messages),
        truth=truth(),
        startup_s=2.0,
    )
    kind = default_registry().get("energy_used_matches_truth")
    assert kind is not None
    spec = CheckSpec(
        id="c", kind=kind.name, points=10, params=params, hint=Bilingual(en="h", zh="h")
    )
    context: CheckContext[Any] = CheckContext(
        LAB, spec, kind.params.model_validate(params), SHEET, obs
    )
    return kind.evaluate(context)


def test_counter_truth_adds_increments_across_the_rollover() -> None:
    counter = CounterTruth(truth(), "energy", WRAP)
    assert len(counter.rollovers) == 1
    assert abs(counter.rollovers[0] - (T0 + 10_000)) <= 100
    used = counter.used(T0 + 5000, T0 + 15_000)
    assert used is not None and abs(used - 0.2) < 0.001


def test_energy_used_across_the_rollover_passes() -> None:
    outcome = run(stream(used_since))
    assert outcome.passed, outcome.message
    assert outcome.evidence["saw"]["rollover_ms"] is not None


def test_a_gateway_that_starts_counting_at_any_offset_passes() -> None:
    assert run(stream(lambda first, ts: 3.5 + used_since(first, ts))).passed


def test_raw_difference_goes_negative_at_the_rollover() -> None:
    def raw(first: int, ts: int) -> float:
        return energy_at(ts) - energy_at(first)

    outcome = run(stream(raw))
    assert "across the rollover" in outcome.message
    assert "never goes negative" in outcome.message
    assert "before the rollover" not in outcome.message
    assert outcome.points == 4.0


def test_a_frozen_value_fails_although_early_reports_are_within_tolerance() -> None:
    outcome = run(stream(lambda first, ts: 0.0))
    assert "across the rollover" in outcome.message
    assert "before the rollover" in outcome.message


def test_word_swapped_counter_fails() -> None:
    def swapped(value: float) -> float:
        raw = round(value / COUNT) % 2**32
        return ((raw & 0xFFFF) << 16 | raw >> 16) * COUNT

    def used(first: int, ts: int) -> float:
        return (swapped(energy_at(ts)) - swapped(energy_at(first))) % WRAP

    assert not run(stream(used)).passed


def test_no_rollover_inside_the_reports_fails_the_rollover_part_with_the_reason() -> None:
    outcome = run(stream(used_since, first_ts=T0 + 11_000))
    assert "no rollover while your gateway reported" in outcome.message


def test_silence_scores_nothing() -> None:
    assert run([]).points == 0
