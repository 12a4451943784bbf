"""derived_metric_matches_truth (edge-04): a windowed statistic computed at the edge (RMS,
moving average), recomputed by the grader from the simulator's own samples.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import TruthSeries, Value


class DerivedParams(CheckParams):
    metric: str = Field(min_length=1)
    tag: str = Field(min_length=1)
    function: Literal["rms", "mean"]
    window_s: float = Field(gt=0)
    poll_s: float = Field(gt=0, description="the poll interval the lab asks for")
    align_ms: int = Field(
        default=600, ge=0, description="sampling ts vs truth tick, as in values_match_truth"
    )
    resolution: float = Field(default=0.01, ge=0)
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    min_messages: int = Field(default=10, ge=1)
    max_examples: int = Field(default=5, ge=1)


def _statistic(function: str, values: Sequence[float]) -> float:
    if function == "mean":
        return sum(values) / len(values)
    return math.sqrt(sum(v * v for v in values) / len(values))


def _phase_statistics(function: str, values: Sequence[float], step: int) -> list[float]:
    """The statistic over every subset a poller taking each step-th sample could have read."""
    subsets = [values[phase::step] for phase in range(step)]
    return [_statistic(function, subset) for subset in subsets if subset]


def _expected_range(
    truth: TruthSeries, params: DerivedParams, ts: int, poll_ms: int
) -> tuple[float, float, float] | None:
    """(exact statistic, low, high) for the window ending at ts.

    The gateway reads every poll_ms what the simulator served: about every step-th truth
    sample (step = poll_ms / the truth's tick). The range is the statistic over each such
    subset (every phase) of the window moved as a whole by up to align_ms either way (a
    read's ts is not the tick that served it, more so on a busy machine), and of the window
    with each edge moved by one poll (which sample falls in), widened by the spread between
    the phases (a poller's jitter mixes them) and the resolution.
    """
    window, times = int(params.window_s * 1000), truth.times

    def values(start: int, end: int) -> list[float]:
        lo, hi = bisect.bisect_right(times, start), bisect.bisect_right(times, end)
        out = []
        for _, sample in truth.samples[lo:hi]:
            v = sample.get(params.tag)
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append(float(v))
        return out

    exact_values = values(ts - window, ts)
    if len(exact_values) < 2:
        return None
    lo, hi = bisect.bisect_right(times, ts - window), bisect.bisect_right(times, ts)
    gaps = sorted(b - a for a, b in itertools.pairwise(times[lo:hi])) or [100]
    tick = max(1, gaps[len(gaps) // 2])
    step = max(1, round(poll_ms / tick))
    exact = _statistic(params.function, exact_values)
    phases = _phase_statistics(params.function, exact_values, step)
    candidates = [exact, *phases]
    moves = [(o, o) for o in range(-params.align_ms, params.align_ms + 1, tick)]
    moves += [(a, b) for a in (-poll_ms, 0, poll_ms) for b in (-poll_ms, 0, poll_ms)]
    for start_move, end_move in moves:
        moved = values(ts - window + start_move, ts + end_move)
        if moved:
            candidates += _phase_statistics(params.function, moved, step)
    margin = max(phases) - min(phases) + params.resolution
    return exact, min(candidates) - margin, max(candidates) + margin


SLOWEST_POLL = 2.0  # a busy machine may halve how often a gateway reads, not more


def _poll_ms(sent: Sequence[tuple[int, Value]], params: DerivedParams) -> int:
    """The poll the ranges assume: the gateway's own cadence (median spacing of its values)
    between the lab's poll and SLOWEST_POLL times it. A gateway slowed down by a busy
    machine reads fewer samples, not other ones; one that publishes seldom still read at
    the lab's poll, so its rare values get no wider range (a mean published every second
    would otherwise pass for an RMS)."""
    spacing = sorted(b[0] - a[0] for a, b in itertools.pairwise(sent) if b[0] > a[0])
    observed = spacing[len(spacing) // 2] if spacing else 0
    lab_ms = int(params.poll_s * 1000)
    return max(lab_ms, min(observed, int(lab_ms * SLOWEST_POLL)))


@check("derived_metric_matches_truth", params=DerivedParams)
def derived_metric_matches_truth(ctx: CheckContext[DerivedParams]) -> CheckOutcome:
    """A windowed statistic published by the gateway, recomputed from the truth's samples."""
    obs, params = ctx.observation, ctx.params
    sent = sorted(
        (r.ts, r.metrics[params.metric])
        for r in obs.telemetry
        if r.ts is not None and params.metric in r.metrics and r.replayed is not True
    )
    first_ts = min((r.ts for r in obs.telemetry if r.ts is not None), default=None)
    poll_ms = _poll_ms(sent, params)
    graded: list[dict[str, Any]] = []
    for ts, value in sent:
        # the gateway's window is full one window (and a poll) after its first sample
        if first_ts is None or ts < first_ts + int((params.window_s + params.poll_s) * 1000):
            continue
        if ts > obs.finished_ms or isinstance(value, bool | str):
            continue
        found = _expected_range(obs.truth, params, ts, poll_ms)
        if found is None:
            continue
        exact, low, high = found
        graded.append(
            {
                "at_s": round((ts - obs.started_ms) / 1000, 2),
                "saw": round(float(value), 4),
                "expected": round(exact, 4),
                "range": [round(low, 4), round(high, 4)],
                "ok": low <= float(value) <= high,
            }
        )
    right = sum(1 for g in graded if g["ok"])
    share = right / len(graded) if graded else 0.0
    parts = [
        (
            f"{len(graded)} values of {params.metric} with a full window (at least "
            f"{params.min_messages})",
            1.0,
            len(graded) >= params.min_messages,
        ),
        (
            f"{params.metric} = {params.function} of {params.tag} over the last "
            f"{params.window_s:g} s in {right} of {len(graded)} ({share:.0%}, needs "
            f"{params.min_fraction:.0%})",
            3.0,
            bool(graded) and share >= params.min_fraction,
        ),
    ]
    evidence = {
        "expected": f"{params.metric} = {params.function} of the {params.tag} samples in the "
        f"{params.window_s:g} s ending at the message's ts; range: over every subset of the "
        f"samples a poller every {poll_ms / 1000:g} s could read, the window moved by up to "
        f"{params.align_ms} ms and each edge by one poll, widened by the spread between "
        f"subsets and {params.resolution:g}",
        "saw": {
            "poll_s": poll_ms / 1000,
            "graded": len(graded),
            "right": right,
            "wrong": [g for g in graded if not g["ok"]][: params.max_examples],
            "examples": graded[:: max(1, len(graded) // 5)][:5],
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry metrics.{params.metric}",
    }
    return ctx.outcome(parts, evidence)
