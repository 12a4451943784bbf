"""Checks of a file the submission produced (IIOTLAB_OUTPUT_DIR, grader/artifacts.py).

plat-05 (data cleaning): the submission exports a run's series from the platform, drops
duplicates and replays, removes spikes, resamples to 1 s and computes per-shift KPIs, and
writes two CSV files. The grader compares them with the simulator's truth:

- the clean truth of a metric is its 10 Hz samples with every scenario `spike` on it taken
  back out (the samples the spike moved by about its magnitude, less the magnitude);
- `artifact_series_matches_truth`: one row per second, value = the mean of the second's
  clean truth samples;
- `artifact_shift_kpis_match_truth`: per shift (an epoch-aligned window), `readings` = how
  many distinct readings (timestamps) of the metric the gateway sent in it, as the grader's
  own MQTT observer saw them; `mean_*` and `max_*` = the mean and the largest of the
  shift's per-second clean truth means. Its probe plays the replayed burst: copies of
  readings already stored, published again into the platform with new seq numbers.

A missing file, a file that is not UTF-8 CSV or lacks a column scores 0 with a message that
says what to change, never a crash.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field

from grader.artifacts import SubmittedFile, find
from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import Observation, TruthEvent, TruthSeries
from iiotlab.errors import IiotlabError

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

MAX_ROWS = 100_000
REPLAY_SEQ_BASE = 2**62  # the grader's replayed copies: far above any gateway's seq


class ArtifactParams(CheckParams):
    file: str = Field(min_length=1, description="path inside IIOTLAB_OUTPUT_DIR")
    metric: str = Field(min_length=1)
    from_s: float = Field(default=4.0, ge=0, description="graded from this long after start")
    settle_s: float = Field(default=4.0, ge=0, description="to this long before the end")


class SeriesParams(ArtifactParams):
    interval_s: float = Field(default=1.0, gt=0)
    tolerance: float | None = Field(default=None, ge=0, description="default: the tag's")
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    outlier: float = Field(default=20.0, gt=0, description="a row off by more is a spike left")


class ShiftParams(ArtifactParams):
    shift_s: float = Field(default=10.0, gt=0)
    interval_s: float = Field(default=1.0, gt=0, description="the resampling interval")
    tolerance: float | None = Field(default=None, ge=0, description="default: the tag's")
    replay_at: float | None = Field(default=None, ge=0, description="s after start")
    replay_window_s: float = Field(
        default=6.0, gt=0, description="readings of [replay_at - this, replay_at) replayed"
    )


# --- reading the student's CSV ---------------------------------------------------------


class ArtifactError(IiotlabError):
    """The file is missing or unusable: the message says what to change (en)."""


def read_csv(
    files: tuple[SubmittedFile, ...], name: str, columns: Sequence[str]
) -> list[dict[str, float]]:
    """Rows of a CSV artifact with the given numeric columns (others ignored)."""
    found = find(files, name)
    where = f"$IIOTLAB_OUTPUT_DIR/{name}"
    if found is None:
        names = ", ".join(f.name for f in files) or "nothing"
        raise ArtifactError(f"{where} was not written (the folder held: {names})")
    if found.data is None:
        raise ArtifactError(f"{where} was not read: {found.problem}")
    try:
        text = found.data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ArtifactError(f"{where} is not UTF-8 text (byte {error.start})") from None
    try:
        return _parse_csv(text, where, columns)
    except csv.Error as error:  # e.g. a field over csv's size limit, a NUL byte
        raise ArtifactError(f"{where} is not readable as CSV: {error}") from None


def _parse_csv(text: str, where: str, columns: Sequence[str]) -> list[dict[str, float]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ArtifactError(
            f"{where}: no column {', '.join(missing)} (the header is {','.join(header) or 'empty'};"
            f" expected {','.join(columns)})"
        )
    rows: list[dict[str, float]] = []
    for number, raw in enumerate(reader, start=2):
        if number > MAX_ROWS:
            raise ArtifactError(f"{where}: over {MAX_ROWS} rows")
        row = {(k or "").strip(): v for k, v in raw.items()}
        try:
            values = {c: float(str(row[c]).strip()) for c in columns}
        except ValueError:
            shown = {c: row.get(c) for c in columns}
            raise ArtifactError(f"{where} line {number}: not numbers: {shown}") from None
        if not all(math.isfinite(v) for v in values.values()):
            raise ArtifactError(f"{where} line {number}: not a finite number: {values}")
        rows.append(values)
    return rows


# --- the clean truth ------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanTruth:
    """A metric's truth samples with the scenario's spikes taken back out."""

    times: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, truth: TruthSeries, events: Sequence[TruthEvent], metric: str) -> CleanTruth:
        samples = [
            (ts, float(v[metric]))
            for ts, v in truth.samples
            if isinstance(v.get(metric), int | float) and not isinstance(v.get(metric), bool)
        ]
        spikes = [e for e in events if e.kind == "spike" and e.detail.get("tag") == metric]
        values = [value for _, value in samples]
        for event in spikes:
            magnitude = float(event.detail.get("magnitude", 0.0))
            end = event.ts_ms + int(float(event.detail.get("duration_s", 1.0)) * 1000) + 200
            before = [v for (ts, _), v in zip(samples, values, strict=True) if ts < event.ts_ms]
            reference = before[-1] if before else None
            for index, (ts, value) in enumerate(samples):
                inside = event.ts_ms - 200 <= ts <= end
                moved = reference is not None and abs(value - reference) > abs(magnitude) / 2
                if inside and moved:
                    values[index] = value - magnitude
        return cls(tuple(ts for ts, _ in samples), tuple(values))

    def mean_between(self, start: int, end: int) -> float | None:
        chosen = [v for ts, v in zip(self.times, self.values, strict=True) if start <= ts < end]
        return sum(chosen) / len(chosen) if chosen else None


def graded_range(obs: Observation, params: ArtifactParams, step_ms: int) -> list[int]:
    """Starts of the whole steps between from_s after the start (and not before the
    gateway's first telemetry arrived) and settle_s before the end."""
    first_message = min((t.received_ms for t in obs.telemetry), default=obs.finished_ms)
    data_ms = max(obs.started_ms + int(params.from_s * 1000), first_message)
    first = -(-data_ms // step_ms) * step_ms
    last_end = obs.finished_ms - int(params.settle_s * 1000)
    return list(range(first, last_end - step_ms + 1, step_ms))


def _tolerance(ctx: CheckContext[Any], given: float | None) -> float:
    if given is not None:
        return given
    tag = next((t for t in ctx.datasheet.tags if t.name == ctx.params.metric), None)
    return (tag.tolerance if tag is not None else None) or 0.0


def _unusable(ctx: CheckContext[Any], error: ArtifactError) -> CheckOutcome:
    return CheckOutcome(
        0.0,
        ctx.spec.points,
        False,
        str(error),
        {
            "expected": f"a CSV file $IIOTLAB_OUTPUT_DIR/{ctx.params.file}",
            "saw": str(error),
            "where": "output/ in the out folder holds what the submission wrote",
        },
    )


# --- artifact_series_matches_truth ----------------------------------------------------------


@check("artifact_series_matches_truth", params=SeriesParams)
def artifact_series_matches_truth(ctx: CheckContext[SeriesParams]) -> CheckOutcome:
    """A resampled series the submission wrote (CSV ts_ms,<metric>) equals the clean truth."""
    obs, params = ctx.observation, ctx.params
    try:
        rows = read_csv(obs.artifacts, params.file, ("ts_ms", params.metric))
    except ArtifactError as error:
        return _unusable(ctx, error)
    step = int(params.interval_s * 1000)
    written = {int(row["ts_ms"]): row[params.metric] for row in rows}
    truth = CleanTruth.of(obs.truth, obs.truth_events, params.metric)
    tolerance = _tolerance(ctx, params.tolerance)
    compared: list[dict[str, Any]] = []
    offs: list[float] = []  # of the rows present
    for start in graded_range(obs, params, step):
        expected = truth.mean_between(start, start + step)
        if expected is not None:
            saw = written.get(start)
            off = abs(saw - expected) if saw is not None else None
            offs += [off] if off is not None else []
            compared.append(
                {"ts_ms": start, "expected": round(expected, 4), "saw": saw, "off": off}
            )
    present = [r for r in compared if r["off"] is not None]
    right = [off for off in offs if off <= tolerance]
    spikes = [r for r in present if r["off"] > params.outlier]
    fraction = len(right) / len(compared) if compared else 0.0
    parts = [
        (f"{params.file} read: {len(rows)} rows", 1.0, bool(rows)),
        (
            f"a row for {len(present)} of {len(compared)} graded seconds",
            1.0,
            bool(compared) and len(present) == len(compared),
        ),
        (
            f"{len(right)} of {len(compared)} rows equal the truth's mean within {tolerance:g}",
            2.0,
            bool(compared) and fraction >= params.min_fraction,
        ),
        (
            f"no spike left ({len(spikes)} rows off by more than {params.outlier:g})",
            1.0,
            bool(present) and not spikes,
        ),
    ]
    wrong = [r for r in compared if r["off"] is None or r["off"] > tolerance]
    evidence = {
        "expected": f"one row per {params.interval_s:g} s (ts_ms = the interval's start), "
        f"{params.metric} = the mean of the clean truth in it, within {tolerance:g}",
        "saw": {
            "rows": len(rows),
            "graded": len(compared),
            "wrong": wrong[:10],
            "spikes": spikes[:5],
        },
        "where": f"$IIOTLAB_OUTPUT_DIR/{params.file} (copied to output/ in the out folder)",
    }
    return ctx.outcome(parts, evidence)


# --- artifact_shift_kpis_match_truth ----------------------------------------------------------


def gateway_readings(obs: Observation, metric: str) -> list[int]:
    """Distinct timestamps of the metric in the gateway's telemetry (not the grader's replays)."""
    return sorted(
        {
            t.ts
            for t in obs.telemetry
            if t.ts is not None and metric in t.metrics and (t.seq or 0) < REPLAY_SEQ_BASE
        }
    )


def expected_shifts(
    obs: Observation, params: ShiftParams, truth: CleanTruth
) -> list[dict[str, Any]]:
    width, step = int(params.shift_s * 1000), int(params.interval_s * 1000)
    readings = gateway_readings(obs, params.metric)
    shifts = []
    for start in graded_range(obs, params, width):
        means = [truth.mean_between(t, t + step) for t in range(start, start + width, step)]
        known = [m for m in means if m is not None]
        if not known:
            continue
        shifts.append(
            {
                "shift_start_ms": start,
                "readings": sum(1 for ts in readings if start <= ts < start + width),
                f"mean_{params.metric}": sum(known) / len(known),
                f"max_{params.metric}": max(known),
            }
        )
    return shifts


@check("artifact_shift_kpis_match_truth", params=ShiftParams)
def artifact_shift_kpis_match_truth(ctx: CheckContext[ShiftParams]) -> CheckOutcome:
    """Per-shift KPIs the submission wrote (readings, mean, max) equal the truth's."""
    obs, params = ctx.observation, ctx.params
    mean_column, max_column = f"mean_{params.metric}", f"max_{params.metric}"
    columns = ("shift_start_ms", "readings", mean_column, max_column)
    try:
        rows = read_csv(obs.artifacts, params.file, columns)
    except ArtifactError as error:
        return _unusable(ctx, error)
    written = {int(row["shift_start_ms"]): row for row in rows}
    tolerance = _tolerance(ctx, params.tolerance)
    expected = expected_shifts(
        obs, params, CleanTruth.of(obs.truth, obs.truth_events, params.metric)
    )
    compared = []
    for shift in expected:
        saw = written.get(shift["shift_start_ms"])
        compared.append(
            {
                **{k: round(v, 4) for k, v in shift.items()},
                "saw": saw,
                "readings_ok": saw is not None and saw["readings"] == shift["readings"],
                "mean_ok": saw is not None
                and abs(saw[mean_column] - shift[mean_column]) <= tolerance,
                "max_ok": saw is not None and abs(saw[max_column] - shift[max_column]) <= tolerance,
            }
        )
    present = [c for c in compared if c["saw"] is not None]

    def all_of(key: str) -> bool:
        return bool(compared) and all(c[key] for c in compared)

    parts = [
        (f"{params.file} read: {len(rows)} shifts", 1.0, bool(rows)),
        (
            f"a row for {len(present)} of {len(compared)} graded shifts",
            1.0,
            bool(compared) and len(present) == len(compared),
        ),
        (
            "readings per shift count each reading once (duplicates and replays dropped)",
            2.0,
            all_of("readings_ok"),
        ),
        (f"{mean_column} per shift within {tolerance:g}", 1.0, all_of("mean_ok")),
        (f"{max_column} per shift within {tolerance:g}", 1.0, all_of("max_ok")),
    ]
    replays = [p for p in obs.probes_of(ctx.spec.id) if p.name == "replay"]
    evidence = {
        "expected": f"per {params.shift_s:g} s shift (epoch-aligned, shift_start_ms): readings "
        f"(distinct timestamps), {mean_column} and {max_column} of the 1 s clean series",
        "saw": {
            "shifts": compared[:10],
            "replayed": [dict(p.detail) for p in replays],
        },
        "where": f"$IIOTLAB_OUTPUT_DIR/{params.file} (copied to output/ in the out folder)",
    }
    return ctx.outcome(parts, evidence)


@probe("artifact_shift_kpis_match_truth")
async def probe_replay(ctx: ProbeContext[ShiftParams]) -> None:
    """The replayed burst: readings of the last replay_window_s, published again."""
    if ctx.params.replay_at is None:
        return
    await ctx.sleep_until(ctx.params.replay_at)
    base, token = ctx.env.platform_url, ctx.env.platform_token
    if base is None:
        ctx.record(
            "replay", expected="a running platform", saw="the lab runs no platform", ok=False
        )
        return
    # the window is fixed in run time, so a probe that runs late on a busy machine replays
    # the same readings (and none of a scenario event that follows replay_at)
    start_ms = ctx.now_ms() - int((time.monotonic() - ctx.started_monotonic) * 1000)
    now = ctx.now_ms()
    query: dict[str, str | int] = {
        "metric": ctx.params.metric,
        "start": start_ms + int((ctx.params.replay_at - ctx.params.replay_window_s) * 1000),
        "end": start_ms + int(ctx.params.replay_at * 1000),
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = f"/api/devices/{ctx.tenant}/{ctx.device}/series"
    try:
        async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
            answer = await client.get(base.rstrip("/") + path, params=query)
        points = answer.json().get("points") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as error:
        ctx.record("replay", expected="HTTP 200", saw=f"{type(error).__name__}", ok=False)
        return
    if not isinstance(points, list):
        ctx.record("replay", expected="HTTP 200", saw=f"HTTP {answer.status_code}", ok=False)
        return
    topic = f"iiot/{ctx.tenant}/{ctx.device}/telemetry"
    for index, (ts, value) in enumerate(points):
        message = {
            "v": 1,
            "device": ctx.device,
            "seq": REPLAY_SEQ_BASE + now % 10**9 * 1000 + index,
            "ts": ts,
            "metrics": {ctx.params.metric: value},
            "replayed": True,
        }
        await ctx.env.publish_admin(topic, json.dumps(message).encode())
    first, last = (points[0][0], points[-1][0]) if points else (None, None)
    ctx.record(
        "replay",
        expected="readings replayed",
        saw=f"{len(points)} replayed",
        ok=True,
        count=len(points),
        first_ts=first,
        last_ts=last,
    )
