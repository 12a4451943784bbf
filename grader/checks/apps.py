"""Industrial APP checks: what an APP wrote back into the platform, against the truth.

`platform_oee_matches_truth` grades an OEE APP (plat-02). The APP reads the line's series
from the platform, computes availability, performance, quality and OEE per window and
writes them as metrics of a derived device. The grader reads them back over the REST API
and computes the same figures from the simulator's own 10 Hz samples.

The OEE model (the lab's README states it for the student):
- windows of `window_s` seconds aligned on the epoch (ts = window start, ms);
- planned time = the whole window;
- run time = time with `state` = 1 (running); every other state is a stop;
- availability = run time / planned time;
- performance = ideal_cycle_time x total count / run time (0 without run time);
- quality = good count / total count (1 when nothing was made);
- total count = good count + reject count made in the window (counter differences);
- OEE = availability x performance x quality.

The APP sees the plant through a gateway that samples it: a count or a state change shows
up to one poll interval late or early. The truth is therefore a range: the figures of the
window with each edge moved by up to `edge_ms` either way (counts and run time moved
independently), and a value inside that range (+ `tolerance`) is right.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from grader.checks.platform import (
    PlatformParams,
    no_platform_answer,
    platform_get,
    probe_answer,
    wait_for_platform,
)
from grader.checks.registry import CheckContext, CheckOutcome, check, probe
from grader.observation import Observation, TruthSeries

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

OeeMetric = Literal["availability", "performance", "quality", "oee"]
RUNNING = 1


class OeeParams(PlatformParams):
    metric: OeeMetric
    device: str = Field(default="oee-1", min_length=1, description="the APP's derived device")
    window_s: float = Field(default=10.0, gt=0)
    from_s: float = Field(default=4.0, ge=0, description="graded windows start after this")
    settle_s: float = Field(default=3.0, ge=0, description="and end this long before the query")
    edge_ms: int = Field(default=500, ge=0, le=5000)
    tolerance: float = Field(default=0.02, ge=0)
    min_fraction: float = Field(default=0.6, gt=0, le=1)


@dataclass(frozen=True)
class LineTruth:
    """Cumulative run time and counters of the line, from the simulator's samples."""

    times: tuple[int, ...]
    run_ms: tuple[int, ...]  # run time from the first sample to each sample
    good: tuple[int, ...]
    rejects: tuple[int, ...]
    ideal_cycle_s: tuple[float, ...]  # the ideal_cycle_time tag at each sample

    @classmethod
    def of(cls, truth: TruthSeries) -> LineTruth | None:
        names = ("state", "good_count", "reject_count", "ideal_cycle_time")
        rows = [(ts, v) for ts, v in truth.samples if all(_number(v.get(k)) for k in names)]
        if len(rows) < 2:
            return None
        run = [0]
        for (ts, values), (next_ts, _) in itertools.pairwise(rows):
            run.append(run[-1] + (next_ts - ts if values["state"] == RUNNING else 0))
        return cls(
            tuple(ts for ts, _ in rows),
            tuple(run),
            tuple(int(v["good_count"]) for _, v in rows),
            tuple(int(v["reject_count"]) for _, v in rows),
            tuple(float(v["ideal_cycle_time"]) for _, v in rows),
        )

    def _index(self, ts: int) -> int:
        return max(0, bisect.bisect_right(self.times, ts) - 1)

    def run_at(self, ts: int) -> float:
        """Run time (ms) up to ts, interpolated inside a tick."""
        i = self._index(ts)
        if i + 1 >= len(self.times) or ts <= self.times[i]:
            return float(self.run_ms[i])
        share = (ts - self.times[i]) / (self.times[i + 1] - self.times[i])
        return self.run_ms[i] + share * (self.run_ms[i + 1] - self.run_ms[i])

    def ideal_at(self, ts: int) -> float:
        return self.ideal_cycle_s[self._index(ts)]

    def counts_at(self, ts: int) -> tuple[int, int]:
        i = self._index(ts)
        return self.good[i], self.rejects[i]

    def covers(self, start: int, end: int) -> bool:
        return bool(self.times) and self.times[0] <= start and end <= self.times[-1]


def window_figures(
    line: LineTruth,
    planned_ms: float,
    run: tuple[int, int],
    counts: tuple[int, int],
    ideal_s: float | None = None,
) -> dict[str, float]:
    """The four figures for run time over `run` and counts over `counts` (start, end ms);
    the ideal cycle time is `ideal_s`, else the tag's value at the counts' end."""
    run_ms = line.run_at(run[1]) - line.run_at(run[0])
    good_end, rejects_end = line.counts_at(counts[1])
    good_start, rejects_start = line.counts_at(counts[0])
    good = good_end - good_start
    total = good + rejects_end - rejects_start
    availability = run_ms / planned_ms
    ideal = ideal_s if ideal_s is not None else line.ideal_at(counts[1])
    performance = ideal * 1000 * total / run_ms if run_ms > 0 else 0.0
    quality = good / total if total > 0 else 1.0
    return {
        "availability": availability,
        "performance": performance,
        "quality": quality,
        "oee": availability * performance * quality,
    }


def _shifted(start: int, end: int, edge_ms: int) -> Iterator[tuple[int, int]]:
    steps = sorted({-edge_ms, -edge_ms // 2, 0, edge_ms // 2, edge_ms})
    for a, b in itertools.product(steps, steps):
        yield start + a, end + b


def truth_range(
    line: LineTruth, start: int, end: int, edge_ms: int, metric: OeeMetric
) -> tuple[float, float, float]:
    """(lowest, exact, highest) of the metric over the window with its edges moved."""
    planned = float(end - start)
    ideal = line.ideal_at(end)
    exact = window_figures(line, planned, (start, end), (start, end), ideal)[metric]
    values = [
        window_figures(line, planned, run, counts, ideal)[metric]
        for run in _shifted(start, end, edge_ms)
        for counts in _shifted(start, end, edge_ms)
    ]
    return min(values), exact, max(values)


def data_from_ms(obs: Observation, from_s: float) -> int:
    """When the APP can have data: from_s after the gateway's start, and not before the
    gateway's first telemetry arrived (a gateway slow to start on a busy machine)."""
    first_message = min((t.received_ms for t in obs.telemetry), default=obs.finished_ms)
    return max(obs.started_ms + int(from_s * 1000), first_message)


def graded_windows(data_ms: int, query_ms: int, params: OeeParams, line: LineTruth) -> list[int]:
    """Starts of the epoch-aligned windows the APP must have written by the query."""
    width = int(params.window_s * 1000)
    first = -(-data_ms // width) * width
    last_end = query_ms - int(params.settle_s * 1000)
    return [
        start
        for start in range(first, last_end - width + 1, width)
        if line.covers(start - params.edge_ms, start + width + params.edge_ms)
    ]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _points(body: Any) -> dict[int, object]:
    """ts -> the last value written for it (a window written twice counts as rewritten)."""
    points = body.get("points") if isinstance(body, dict) else None
    found: dict[int, object] = {}
    for point in points if isinstance(points, list) else ():
        if isinstance(point, list) and len(point) == 2 and isinstance(point[0], int):
            found[point[0]] = point[1]
    return found


def compare_windows(
    line: LineTruth, starts: Sequence[int], written: dict[int, object], params: OeeParams
) -> list[dict[str, Any]]:
    rows = []
    width = int(params.window_s * 1000)
    for start in starts:
        low, exact, high = truth_range(line, start, start + width, params.edge_ms, params.metric)
        saw = written.get(start)
        ok = (
            _number(saw) and low - params.tolerance <= saw <= high + params.tolerance  # type: ignore[operator]
        )
        rows.append(
            {
                "window": start,
                "expected": round(exact, 4),
                "range": [round(low, 4), round(high, 4)],
                "saw": saw,
                "ok": ok,
            }
        )
    return rows


@check("platform_oee_matches_truth", params=OeeParams)
def platform_oee_matches_truth(ctx: CheckContext[OeeParams]) -> CheckOutcome:
    """An APP's OEE figure per window, read back from the platform, equals the truth's."""
    obs, params = ctx.observation, ctx.params
    where = f"GET /api/devices/{obs.tenant}/{params.device}/series?metric={params.metric}"
    record = probe_answer(obs, ctx.spec.id, "series")
    if record is None or not record.ok:
        return no_platform_answer(ctx, record, where)
    line = LineTruth.of(obs.truth)
    data_ms = data_from_ms(obs, params.from_s)
    starts = graded_windows(data_ms, record.ts_ms, params, line) if line else []
    written = _points(record.detail.get("body"))
    rows = compare_windows(line, starts, written, params) if line else []
    present = [row for row in rows if row["saw"] is not None]
    matching = [row for row in rows if row["ok"]]
    fraction = len(matching) / len(rows) if rows else 0.0
    window = f"{params.window_s:g} s"
    parts = [
        (
            f"{params.metric} written for {len(present)} of {len(rows)} whole {window} windows "
            "(ts = window start, aligned on the epoch)",
            1.0,
            bool(rows) and len(present) == len(rows),
        ),
        (
            f"{params.metric} equals the truth in {len(matching)} of {len(rows)} windows",
            3.0,
            bool(rows) and fraction >= params.min_fraction,
        ),
    ]
    off_grid = sorted(ts for ts in written if ts % int(params.window_s * 1000))[:5]
    evidence = {
        "expected": f"{params.metric} of {params.device} per {window} window, within the "
        f"truth's range (window edges moved by up to {params.edge_ms} ms) + {params.tolerance:g}"
        f", in at least {params.min_fraction:.0%} of the windows",
        "saw": {
            "windows": rows[:10],
            "written": len(written),
            "not_aligned": off_grid,
            "ideal_cycle_time": line.ideal_cycle_s[-1] if line else None,
        },
        "where": where,
    }
    return ctx.outcome(parts, evidence)


@probe("platform_oee_matches_truth")
async def probe_oee(ctx: ProbeContext[OeeParams]) -> None:
    base = await wait_for_platform(ctx, "series")
    if base is None:
        return
    now = ctx.now_ms()
    query = {
        "metric": ctx.params.metric,
        "start": max(0, now - int(ctx.lab.duration_s * 1000) - 60_000),
        "end": now + 60_000,
    }
    await platform_get(
        ctx, "series", base, f"/api/devices/{ctx.tenant}/{ctx.params.device}/series", query
    )
