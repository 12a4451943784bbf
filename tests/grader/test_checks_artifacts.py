"""Artifact checks on hand-made output files, truth and observed readings (plat-05)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from grader.artifacts import SubmittedFile
from grader.checks.artifacts import REPLAY_SEQ_BASE
from grader.observation import Observation, ObservedMessage, TruthEvent, TruthSeries
from tests.grader.builders import DEVICE, T0, TENANT, observation, run_check

pytestmark = pytest.mark.unit

SECONDS = 40
SPIKE_AT, SPIKE_KW = T0 + 15_000, 150.0
SERIES = {"file": "power_1s.csv", "metric": "active_power", "tolerance": 3.0}
KPIS = {"file": "shifts.csv", "metric": "active_power", "tolerance": 2.0}


def power(ts: int) -> float:
    return 50.0 + (ts - T0) / 1000  # +1 kW per second


def spiked(ts: int) -> bool:
    return SPIKE_AT <= ts < SPIKE_AT + 1000


def truth() -> TruthSeries:
    return TruthSeries(
        tuple(
            (ts, {"active_power": power(ts) + (SPIKE_KW if spiked(ts) else 0.0)})
            for ts in range(T0 - 2000, T0 + SECONDS * 1000, 100)
        )
    )


READINGS = list(range(T0 + 250, T0 + SECONDS * 1000, 500))


def reading(seq: int, ts: int) -> ObservedMessage:
    value = power(ts) + (SPIKE_KW if spiked(ts) else 0.0)
    body = {"v": 1, "device": DEVICE, "seq": seq, "ts": ts, "metrics": {"active_power": value}}
    return ObservedMessage(f"iiot/{TENANT}/{DEVICE}/telemetry", json.dumps(body).encode(), ts + 5)


def base(*files: SubmittedFile) -> Observation:
    messages = [reading(i, ts) for i, ts in enumerate(READINGS)]
    # the grader's own replayed copies are seen by its observer too: not the gateway's readings
    messages += [reading(REPLAY_SEQ_BASE + i, ts) for i, ts in enumerate(READINGS[30:40])]
    spike = TruthEvent(
        SPIKE_AT, "spike", DEVICE, {"tag": "active_power", "duration_s": 1.0, "magnitude": SPIKE_KW}
    )
    obs = observation(messages, seconds=SECONDS, truth_events=(spike,), artifacts=files)
    return replace(obs, truth=truth())


def csv_file(name: str, header: str, rows: list[list[Any]]) -> SubmittedFile:
    text = header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)
    return SubmittedFile(name, len(text), text.encode())


def series_rows(spike_left: bool = False) -> list[list[Any]]:
    rows = []
    for second in range(T0, T0 + SECONDS * 1000, 1000):
        readings = [ts for ts in READINGS if second <= ts < second + 1000]
        values = [power(ts) + (SPIKE_KW if spike_left and spiked(ts) else 0) for ts in readings]
        rows.append([second, round(sum(values) / len(values), 3)])
    return rows


def shift_rows(extra_readings: int = 0, spike_left: bool = False) -> list[list[Any]]:
    series = dict(series_rows(spike_left))
    rows = []
    for start in range(T0, T0 + SECONDS * 1000, 10_000):
        seconds = [series[t] for t in range(start, start + 10_000, 1000)]
        count = sum(1 for ts in READINGS if start <= ts < start + 10_000) + extra_readings
        rows.append([start, count, round(sum(seconds) / 10, 3), max(seconds)])
    return rows


SERIES_HEADER = "ts_ms,active_power"
SHIFT_HEADER = "shift_start_ms,readings,mean_active_power,max_active_power"


def test_clean_files_pass_both_checks() -> None:
    obs = base(
        csv_file("power_1s.csv", SERIES_HEADER, series_rows()),
        csv_file("shifts.csv", SHIFT_HEADER, shift_rows()),
    )
    series = run_check("artifact_series_matches_truth", obs, **SERIES)
    kpis = run_check("artifact_shift_kpis_match_truth", obs, **KPIS)
    assert series.passed, series.evidence
    assert kpis.passed, kpis.evidence
    assert [s["readings"] for s in kpis.evidence["saw"]["shifts"]] == [20, 20]


def test_a_spike_left_in_fails_the_series_and_the_shift_figures() -> None:
    obs = base(
        csv_file("power_1s.csv", SERIES_HEADER, series_rows(spike_left=True)),
        csv_file("shifts.csv", SHIFT_HEADER, shift_rows(spike_left=True)),
    )
    series = run_check("artifact_series_matches_truth", obs, **SERIES)
    assert not series.passed and "no spike left (1 rows off" in series.message
    kpis = run_check("artifact_shift_kpis_match_truth", obs, **KPIS)
    assert "mean_active_power per shift" in kpis.message and "readings" not in kpis.message


def test_duplicates_counted_as_readings_fail_the_kpis() -> None:
    obs = base(csv_file("shifts.csv", SHIFT_HEADER, shift_rows(extra_readings=5)))
    kpis = run_check("artifact_shift_kpis_match_truth", obs, **KPIS)
    assert kpis.message == (
        "failed: readings per shift count each reading once (duplicates and replays dropped)"
    )


@pytest.mark.parametrize(
    ("file", "said"),
    [
        (None, "power_1s.csv was not written (the folder held: nothing)"),
        (SubmittedFile("power_1s.csv", 3, b"\xff\xfe\x00"), "is not UTF-8 text"),
        (SubmittedFile("power_1s.csv", 9, None, "a link: not read"), "a link: not read"),
        (csv_file("power_1s.csv", "ts,active_power", [[1, 2]]), "no column ts_ms"),
        (csv_file("power_1s.csv", SERIES_HEADER, [[T0, "high"]]), "line 2: not numbers"),
        (csv_file("power_1s.csv", SERIES_HEADER, [[T0, "nan"]]), "not a finite number"),
        (
            SubmittedFile("power_1s.csv", 200_010, b"ts_ms,active_power\n1," + b"9" * 200_000),
            "is not readable as CSV: field larger than field limit",
        ),
    ],
)
def test_missing_or_garbled_files_score_zero_with_a_reason(
    file: SubmittedFile | None, said: str
) -> None:
    obs = base(*([file] if file else []))
    outcome = run_check("artifact_series_matches_truth", obs, **SERIES)
    assert outcome.points == 0 and said in outcome.message, outcome.message


def test_rows_off_the_second_grid_are_missing_rows() -> None:
    shifted = [[ts + 500, value] for ts, value in series_rows()]
    obs = base(csv_file("power_1s.csv", SERIES_HEADER, shifted))
    outcome = run_check("artifact_series_matches_truth", obs, **SERIES)
    assert "a row for 0 of" in outcome.message


def test_seconds_before_the_gateways_first_reading_are_not_graded() -> None:
    late_rows = [row for row in series_rows() if row[0] >= T0 + 12_000]
    obs = base(csv_file("power_1s.csv", SERIES_HEADER, late_rows))
    assert not run_check("artifact_series_matches_truth", obs, **SERIES).passed
    late_start = replace(
        obs, messages=tuple(m for m in obs.messages if m.received_ms > T0 + 11_500)
    )
    outcome = run_check("artifact_series_matches_truth", late_start, **SERIES)
    assert outcome.passed, outcome.evidence
