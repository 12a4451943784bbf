"""Energy metering: the energy used over a run, computed across the counter's rollover.

An energy meter counts imported energy in a uint32 register pair that rolls over to 0
(the energy plant's `energy_wrap_kwh`). A gateway that publishes the energy used since it
started must add the counts across the rollover. The truth is the simulator's own counter,
sampled at every tick: the energy used between two instants is the sum of its increments,
each taken modulo the wrap.
"""

from __future__ import annotations

import bisect
from typing import Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import Observation, TruthSeries
from iiotlab.datasheet import Datasheet


class EnergyUsedParams(CheckParams):
    metric: str = Field(default="energy_used_kwh", min_length=1)
    tag: str = Field(default="energy", description="the counter tag in the truth")
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    min_messages: int = Field(default=5, ge=2)
    min_after_rollover: int = Field(default=3, ge=1)
    align_ms: int = Field(default=300, ge=0, description="sampling time uncertainty")
    resolution: float | None = Field(
        default=None, gt=0, description="kWh allowed besides alignment (default: 2 counter counts)"
    )


class CounterTruth:
    """The counter's truth as cumulative energy: `used(a, b)` is kWh used from a to b."""

    def __init__(self, truth: TruthSeries, tag: str, wrap: float) -> None:
        self.times: list[int] = []
        self.cumulative: list[float] = []
        self.rollovers: list[int] = []
        total, previous = 0.0, None
        for ts, values in truth.samples:
            value = values.get(tag)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if previous is not None:
                step = float(value) - previous
                if step < -wrap / 2:
                    step += wrap
                    self.rollovers.append(ts)
                total += step
            previous = float(value)
            self.times.append(ts)
            self.cumulative.append(total)

    def at(self, ts_ms: int) -> float | None:
        index = bisect.bisect_right(self.times, ts_ms) - 1
        return self.cumulative[index] if index >= 0 else None

    def used(self, start_ms: int, end_ms: int) -> float | None:
        start, end = self.at(start_ms), self.at(end_ms)
        return None if start is None or end is None else end - start


def counter_wrap(sheet: Datasheet, tag: str) -> tuple[float, float]:
    """(wrap in kWh, one count in kWh) of the counter tag: a uint32 of `scale` per count."""
    spec = sheet.tag(tag)
    scale = spec.modbus.scale if spec.modbus is not None else 0.001
    return 2**32 * scale, scale


def _reports(obs: Observation, metric: str) -> list[tuple[int, float]]:
    found = []
    for record in obs.telemetry:
        value = record.metrics.get(metric)
        if record.ts is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        found.append((record.ts, float(value)))
    return sorted(found)


def _compare(
    reports: list[tuple[int, float]], truth: CounterTruth, resolution: float, align_ms: int
) -> list[dict[str, Any]]:
    """Each report after the first against the truth, both relative to the first report."""
    first_ts, first_value = reports[0]

    def blur(ts: int) -> float:
        return truth.used(ts - align_ms, ts + align_ms) or 0.0

    rows = []
    for ts, value in reports[1:]:
        expected = truth.used(first_ts, ts)
        tolerance = resolution + blur(ts) + blur(first_ts)
        sent = value - first_value
        ok = expected is not None and abs(sent - expected) <= tolerance
        rows.append(
            {"ts": ts, "sent": round(sent, 6), "expected": expected, "ok": ok, "tol": tolerance}
        )
    return rows


def _share_ok(rows: list[dict[str, Any]], minimum: int, fraction: float) -> bool:
    return len(rows) >= minimum and sum(r["ok"] for r in rows) >= fraction * len(rows)


@check("energy_used_matches_truth", params=EnergyUsedParams)
def energy_used_matches_truth(ctx: CheckContext[EnergyUsedParams]) -> CheckOutcome:
    """The energy used since the gateway started, across the counter's rollover."""
    obs, params = ctx.observation, ctx.params
    if params.tag not in {t.name for t in ctx.datasheet.tags}:
        return ctx.lab_error(f"the datasheet has no counter tag '{params.tag}'")
    wrap, count = counter_wrap(ctx.datasheet, params.tag)
    resolution = params.resolution if params.resolution is not None else 2 * count
    truth = CounterTruth(obs.truth, params.tag, wrap)
    reports = _reports(obs, params.metric)
    rows = _compare(reports, truth, resolution, params.align_ms) if reports else []
    first_ts = reports[0][0] if reports else None
    last_ts = reports[-1][0] if reports else None
    rollover = next(
        (t for t in truth.rollovers if first_ts is not None and first_ts < t <= (last_ts or 0)),
        None,
    )
    before = [r for r in rows if rollover is None or r["ts"] < rollover]
    after = [r for r in rows if rollover is not None and r["ts"] > rollover + params.align_ms]
    run_used = truth.used(obs.started_ms, obs.finished_ms) or 0.0
    sane = bool(reports) and all(
        -resolution <= v - reports[0][1] <= run_used + resolution for _, v in reports
    )
    missing = " (no rollover while your gateway reported)" if rollover is None else ""
    parts: list[tuple[str, float, bool]] = [
        (
            f"'{params.metric}' reported in at least {params.min_messages} messages",
            1,
            len(reports) >= params.min_messages,
        ),
        (
            "energy used matches the truth before the rollover",
            1,
            _share_ok(before, 1, params.min_fraction),
        ),
        (
            f"energy used matches the truth across the rollover{missing}",
            2,
            _share_ok(after, params.min_after_rollover, params.min_fraction),
        ),
        ("energy used never goes negative or jumps past what the meter counted", 1, sane),
    ]
    wrong = [r for r in rows if not r["ok"]]
    evidence = {
        "expected": (
            f"'{params.metric}' = kWh counted since your first report, increments of the "
            f"counter taken modulo its wrap ({wrap:g} kWh)"
        ),
        "saw": {
            "reports": len(reports),
            "rollover_ms": rollover,
            "used_in_run_kwh": round(run_used, 6),
            "first_wrong": wrong[:5],
            "last": rows[-3:],
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry metrics.{params.metric}",
    }
    return ctx.outcome(parts, evidence)
