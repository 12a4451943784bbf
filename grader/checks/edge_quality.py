"""Edge quality checks (edge-02, edge-03), all judged against the simulator's truth.

- `report_by_exception_truth`: the message budget, and no change past the allowed deadband
  left unreported for longer than the lab allows.
- `restart_inside_outage`: store-and-forward when the gateway restarts inside a broker
  outage: the buffer on disk, seq continuing, the backlog replayed with its own ts.

edge-04's derived metrics are judged in grader.checks.edge_analytics.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.checks.reliability import OutageParams, plant_change
from grader.observation import ActionRecord, Observation, TelemetryRecord, TruthSeries, Value

# -- report by exception -------------------------------------------------------------------


class ExceptionParams(CheckParams):
    deadbands: dict[str, float] = Field(
        min_length=1, description="tag -> the largest deadband allowed (a boolean: 0, any flip)"
    )
    max_rate_hz: float = Field(gt=0, description="telemetry messages per second at most")
    max_unreported_s: float = Field(default=1.0, gt=0)
    slack_s: float = Field(
        default=0.3, ge=0, description="a truth tick and a read in flight, added to the limit"
    )
    from_s: float = Field(default=3.0, ge=0, description="start-up grace")
    parts: list[Literal["budget", "changes"]] = Field(default=["budget", "changes"], min_length=1)
    max_examples: int = Field(default=5, ge=1)


def _away(reported: Value, truth: Value, deadband: float) -> bool:
    if isinstance(reported, bool | str) or isinstance(truth, bool | str):
        return reported != truth
    return abs(float(truth) - float(reported)) > deadband


def _unreported_runs(
    truth: TruthSeries,
    reports: Sequence[tuple[int, Value]],
    tag: str,
    deadband: float,
    window: tuple[int, int],
) -> list[dict[str, Any]]:
    """Every run of truth samples that stayed further than `deadband` from the last value
    reported (by its sampling ts), with how long it lasted before a report or a return.

    A run ends at the first report after it began or the first truth sample back inside the
    band: a noisy value that only grazes the band gives short runs, which are fair; a change
    the gateway did not report gives one long run.
    """
    times = [ts for ts, _ in reports]
    runs: list[dict[str, Any]] = []
    start: int | None = None
    start_ref = -1
    max_gap = 0
    previous_ts: int | None = None
    for ts, values in truth.samples:
        if ts < window[0] or ts > window[1] or tag not in values:
            continue
        gap = 0 if previous_ts is None else ts - previous_ts
        previous_ts = ts
        index = bisect.bisect_right(times, ts) - 1
        if index < 0:
            continue
        if start is not None and (
            index != start_ref or not _away(reports[index][1], values[tag], deadband)
        ):
            end = times[index] if index != start_ref else ts
            runs.append({"from_ms": start, "to_ms": end, "max_truth_gap_ms": max_gap})
            start = None
        if start is None and _away(reports[index][1], values[tag], deadband):
            start, start_ref, max_gap = ts, index, 0
        elif start is not None:
            max_gap = max(max_gap, gap)
    if start is not None:
        runs.append(
            {"from_ms": start, "to_ms": window[1], "max_truth_gap_ms": max_gap, "open": True}
        )
    return runs


def _reported_at(truth: TruthSeries, record: TelemetryRecord, tag: str, deadband: float) -> int:
    """When a report counts: its sampling `ts` when the simulator served that value then
    (within the deadband) and it had not yet arrived, else its arrival at the grader.

    A `ts` moved earlier than the read would credit a late report as timely: the value it
    carries was not served at that `ts`, so the arrival, which no gateway can move, counts.
    """
    ts = record.ts
    assert ts is not None
    served = truth.value_at(tag, ts)
    if served is None or ts > record.received_ms or _away(record.metrics[tag], served, deadband):
        return record.received_ms
    return ts


@check("report_by_exception_truth", params=ExceptionParams)
def report_by_exception_truth(ctx: CheckContext[ExceptionParams]) -> CheckOutcome:
    """Report by exception against the truth: under the message budget, no change missed."""
    obs, params = ctx.observation, ctx.params
    window = (obs.started_ms + int(params.from_s * 1000), obs.finished_ms)
    # every message is traffic (a replayed one too); only live ones count as timely reports
    counted = [r for r in obs.telemetry if window[0] <= r.received_ms <= window[1]]
    live = [r for r in obs.telemetry if r.replayed is not True and r.ts is not None]
    seconds = max(1e-3, (window[1] - window[0]) / 1000)
    rate = len(counted) / seconds
    limit_ms = (params.max_unreported_s + params.slack_s) * 1000
    parts: list[tuple[str, float, bool]] = []
    per_tag: dict[str, Any] = {}
    silent = []
    for tag, deadband in params.deadbands.items():
        reports = sorted(
            (_reported_at(obs.truth, r, tag, deadband), r.metrics[tag])
            for r in live
            if tag in r.metrics
        )
        if not reports:
            silent.append(tag)
        runs = _unreported_runs(obs.truth, reports, tag, deadband, window)
        # a stalled simulator delays what any gateway could read: its gap is added
        missed = [
            r
            for r in runs
            if r["to_ms"] - r["from_ms"] > limit_ms + max(0, r["max_truth_gap_ms"] - 100)
        ]
        missed.sort(key=lambda r: r["from_ms"] - r["to_ms"])
        longest = max((r["to_ms"] - r["from_ms"] for r in runs), default=0)
        per_tag[tag] = {
            "deadband": deadband,
            "reports": len(reports),
            "missed": len(missed),
            "longest_unreported_s": round(longest / 1000, 2),
            "worst": [
                {
                    "from_s": round((r["from_ms"] - obs.started_ms) / 1000, 2),
                    "unreported_s": round((r["to_ms"] - r["from_ms"]) / 1000, 2),
                    "truth_then": obs.truth.value_at(tag, r["from_ms"]),
                }
                for r in missed[: params.max_examples]
            ],
        }
        if "changes" in params.parts:
            parts.append(
                (
                    f"{tag}: {len(missed)} changes past {deadband:g} unreported for more than "
                    f"{params.max_unreported_s:g} s" + (" (never reported)" if not reports else ""),
                    1.0,
                    bool(reports) and not missed,
                )
            )
    if "budget" in params.parts:
        parts.insert(
            0,
            (
                f"{len(counted)} telemetry messages in {seconds:.1f} s = {rate:.2f}/s "
                f"(budget {params.max_rate_hz:g}/s)"
                + (f"; never reported: {', '.join(silent)}" if silent else ""),
                len(params.deadbands) if "changes" in params.parts else 1.0,
                bool(counted) and not silent and rate <= params.max_rate_hz,
            ),
        )
    evidence = {
        "expected": f"at most {params.max_rate_hz:g} messages/s; no truth change larger than "
        f"the deadband unreported for over {params.max_unreported_s:g} s (+{params.slack_s:g} s "
        "for a tick and a read), judged on the messages' sampling ts where the simulator served "
        "the reported value at that ts, else on their arrival",
        "saw": {"rate_hz": round(rate, 3), "messages": len(counted), "tags": per_tag},
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry vs the simulator's samples",
    }
    return ctx.outcome(parts, evidence)


# -- store and forward across a restart inside an outage -----------------------------------


class RestartOutageParams(OutageParams):
    parts: list[Literal["no_loss", "seq", "replay"]] = Field(
        default=["no_loss", "seq", "replay"], min_length=1
    )


def _outage_with_kill(obs: Observation) -> tuple[ActionRecord, ActionRecord] | None:
    # in practice mode the grader kills nothing: the skipped step still marks when to judge
    names = ("gateway_kill", "gateway_restart", "gateway_kill_skipped", "gateway_restart_skipped")
    kills = [a for name in names for a in obs.actions_named(name)]
    for outage in obs.actions_named("broker_outage"):
        for kill in kills:
            if outage.started_ms <= kill.started_ms and kill.ended_ms <= outage.ended_ms:
                return outage, kill
    return None


def _seq_facts(records: Sequence[TelemetryRecord], kill: ActionRecord) -> dict[str, Any]:
    numbered = [r for r in records if r.seq is not None]
    by_seq: dict[int, set[int | None]] = {}
    for r in numbered:
        by_seq.setdefault(r.seq or 0, set()).add(r.ts)
    seqs = sorted(by_seq)
    gaps = [[a + 1, b - 1] for a, b in itertools.pairwise(seqs) if b - a > 1]
    # the same seq for two different samples; a QoS 1 redelivery repeats the same sample
    reused = [s for s, stamps in by_seq.items() if len(stamps) > 1]
    before = [r.seq for r in numbered if r.ts is not None and r.ts < kill.started_ms]
    after = [r.seq for r in numbered if r.ts is not None and r.ts >= kill.ended_ms]
    return {
        "gaps": gaps,
        "reused": sorted(reused),
        "redelivered": len(numbered) - len(by_seq) - sum(len(by_seq[s]) - 1 for s in reused),
        "last_before_kill": max((s for s in before if s is not None), default=None),
        "first_after_restart": min((s for s in after if s is not None), default=None),
    }


@check("restart_inside_outage", params=RestartOutageParams)
def restart_inside_outage(ctx: CheckContext[RestartOutageParams]) -> CheckOutcome:
    """A gateway restart inside a broker outage: no loss, no reused seq, backlog replayed."""
    obs, params = ctx.observation, ctx.params
    pair = _outage_with_kill(obs)
    if pair is None:
        return ctx.lab_error(
            "the scenario needs a gateway_kill/gateway_restart inside a broker_outage"
        )
    outage, kill = pair
    records = obs.telemetry
    facts = _seq_facts(records, kill)
    after_restore = [r for r in records if r.received_ms >= outage.ended_ms]
    before_kill = [
        r for r in after_restore if r.ts is not None and outage.started_ms <= r.ts < kill.started_ms
    ]
    change = plant_change(obs, ctx.datasheet, replace(outage, ended_ms=kill.started_ms), params)
    spans = any(r.received_ms < outage.started_ms for r in records) and bool(after_restore)
    parts: list[tuple[str, float, bool]] = []
    if "no_loss" in params.parts:
        lost = change if not before_kill else None
        parts.append(
            (
                f"no loss: {len(facts['gaps'])} seq gaps; {len(before_kill)} messages sampled in "
                "the outage before the restart delivered after it"
                + (f" ({lost['tag']} changed then: the buffer did not survive)" if lost else "")
                + ("" if spans else "; no messages on both sides of the outage"),
                2.0,
                spans and not facts["gaps"] and lost is None,
            )
        )
    if "seq" in params.parts:
        first, last = facts["first_after_restart"], facts["last_before_kill"]
        continues = first is not None and last is not None and first > last
        parts.append(
            (
                f"seq continues across the restart (last before {last}, first after {first}) "
                f"and no seq numbers two samples ({len(facts['reused'])} reused)",
                1.0,
                continues and not facts["reused"],
            )
        )
    deadline = outage.ended_ms + int(params.replay_within_s * 1000)
    inside = [
        r
        for r in after_restore
        if r.ts is not None and outage.started_ms <= r.ts <= outage.ended_ms
    ]
    unflagged = [r for r in inside if r.replayed is not True or r.received_ms > deadline]
    if "replay" in params.parts:
        parts.append(
            (
                f"backlog replayed: {len(inside)} messages sampled during the outage arrived after "
                f"it, {len(unflagged)} of them without replayed=true within "
                f"{params.replay_within_s:g} s (a re-stamped ts is not from the outage)",
                1.0,
                bool(inside) and not unflagged,
            )
        )
    evidence = {
        "expected": "seq without gaps and never reused, rising across the restart; what was "
        "sampled while the broker was down (before and after the restart) delivered after it "
        "with replayed=true and its sampling ts",
        "saw": {
            **{
                k: v[: params.max_gap_examples] if isinstance(v, list) else v
                for k, v in facts.items()
            },
            "outage_ms": [outage.started_ms, outage.ended_ms],
            "restart_ms": [kill.started_ms, kill.ended_ms],
            "plant_change_before_restart": change,
            "sampled_in_outage_delivered_after": len(inside),
            "of_them_before_restart": len(before_kill),
            "without_replayed_flag": len(unflagged),
            "messages": len(records),
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry seq, ts and replayed",
    }
    return ctx.outcome(parts, evidence)
