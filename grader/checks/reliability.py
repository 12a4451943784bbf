"""Reliability checks: no loss across a broker outage, recovery from a PLC outage."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import ActionRecord, Observation, TelemetryRecord, Value
from iiotlab.datasheet import Datasheet, TagSpec


def _no_action(ctx: CheckContext[Any], action: str) -> CheckOutcome:
    return CheckOutcome(
        0.0,
        ctx.spec.points,
        False,
        f"lab error: the scenario has no '{action}' step, so this check cannot be graded",
        {"expected": f"a scenario step with action {action}", "saw": [], "where": "lab.yaml"},
    )


class OutageParams(CheckParams):
    replay_within_s: float = Field(default=15.0, gt=0)
    max_gap_examples: int = Field(default=10, ge=1)
    significant_change: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="a change of this share of a tag's datasheet range passes any sane deadband",
    )
    hold_s: float = Field(
        default=1.5, ge=0, description="how long such a change lasts to be surely sampled"
    )


def _seq_gaps(records: Sequence[TelemetryRecord]) -> tuple[list[list[int]], int]:
    seqs = sorted({r.seq for r in records if r.seq is not None})
    gaps = [[a + 1, b - 1] for a, b in itertools.pairwise(seqs) if b - a > 1]
    duplicates = sum(1 for r in records if r.seq is not None) - len(seqs)
    return gaps, duplicates


def _moved(tag: TagSpec, baseline: Value, value: Value, share: float) -> bool:
    """Whether the truth moved from baseline far enough that any sane gateway reports it."""
    if isinstance(baseline, bool) or isinstance(value, bool):
        return baseline != value
    if isinstance(baseline, str) or isinstance(value, str) or tag.range is None:
        return False  # a text, or a number without a range: no scale to judge a change by
    low, high = tag.range
    return abs(value - baseline) > share * (high - low)


def plant_change(
    obs: Observation, sheet: Datasheet, outage: ActionRecord, params: OutageParams
) -> dict[str, Any] | None:
    """The first reported tag whose truth stayed far from its value at the cut for hold_s.

    Then the gateway surely sampled something during the outage, whatever its deadband or
    heartbeat: nothing delivered afterwards means lost. None when the plant stayed quiet.
    """
    reported = set().union(*(r.reported for r in obs.telemetry)) if obs.telemetry else set()
    hold_ms = int(params.hold_s * 1000)
    for tag in sheet.tags:
        baseline = obs.truth.value_at(tag.name, outage.started_ms)
        if tag.name not in reported or baseline is None:
            continue
        run_start: int | None = None
        for ts, values in obs.truth.samples:
            value = values.get(tag.name)
            if ts < outage.started_ms or value is None:
                continue
            if ts > outage.ended_ms:
                break
            if not _moved(tag, baseline, value, params.significant_change):
                run_start = None
                continue
            run_start = ts if run_start is None else run_start
            if ts - run_start >= hold_ms:
                return {"tag": tag.name, "at_cut": baseline, "then": value, "ts": ts}
    return None


def _judge_outage(
    obs: Observation, sheet: Datasheet, outage: ActionRecord, params: OutageParams
) -> tuple[list[tuple[str, float, bool]], dict[str, Any]]:
    """Parts and evidence of one outage.

    The grader's own record of the cut tells a kept ts from a re-stamped one: a message
    sampled while the broker was unreachable has a ts inside the cut (or just before it, in
    flight); a gateway that re-stamps its backlog on replay stamps it after the restore.
    """
    deadline = outage.ended_ms + int(params.replay_within_s * 1000)
    after = [r for r in obs.telemetry if r.received_ms >= outage.ended_ms]
    late = [r for r in after if r.ts is not None and outage.started_ms <= r.ts <= outage.ended_ms]
    flagged = [r for r in after if r.replayed is True and r.received_ms <= deadline]
    backlog = {id(r): r for r in (*late, *flagged)}.values()
    kept = [r for r in backlog if r.ts is not None and r.ts <= outage.ended_ms]
    change = plant_change(obs, sheet, outage, params)
    window: dict[str, Any] = {
        "outage_ms": [outage.started_ms, outage.ended_ms],
        "plant_change": change,
        "sampled_inside_delivered_after": len(late),
        "marked_replayed": len(flagged),
        "replayed_ts_after_restore": sorted(r.ts or 0 for r in flagged if r not in kept)[:5],
    }
    if change is None and not backlog:
        # nothing surely changed and the gateway sampled nothing: nothing to replay, no part
        window["judged"] = "no: the plant stayed inside any deadband and nothing was buffered"
        return [], window
    lost = "" if backlog else f" (lost: {change['tag'] if change else '?'} changed meanwhile)"
    unmarked = [r for r in late if r.replayed is not True or r.received_ms > deadline]
    return [
        (
            f"{len(late)} messages sampled during the outage delivered after it with "
            f"replayed=true within {params.replay_within_s:g} s{lost}",
            1.0,
            bool(backlog) and not unmarked,
        ),
        (
            f"replayed messages keep their sampling ts ({len(kept)} of {len(backlog)} "
            "stamped before the broker came back)",
            1.0,
            bool(kept),
        ),
    ], window


@check("no_loss_across_broker_outage", params=OutageParams)
def no_loss_across_broker_outage(ctx: CheckContext[OutageParams]) -> CheckOutcome:
    """Store-and-forward: seq contiguous, outage samples replayed later with their own ts."""
    obs, params = ctx.observation, ctx.params
    outages = obs.actions_named("broker_outage")
    if not outages:
        return _no_action(ctx, "broker_outage")
    records = obs.telemetry
    gaps, duplicates = _seq_gaps(records)
    numbered = [r for r in records if r.seq is not None]
    # contiguous across each outage: numbered messages on both sides of it, no gap between
    spans = all(
        any(r.received_ms < o.started_ms for r in numbered)
        and any(r.received_ms >= o.ended_ms for r in numbered)
        for o in outages
    )
    parts: list[tuple[str, float, bool]] = [
        (
            f"seq contiguous across the outage ({len(gaps)} gaps, {duplicates} duplicates"
            + ("" if spans else ", no messages on both sides of it")
            + ")",
            2.0,
            spans and not gaps,
        ),
    ]
    windows = []
    for outage in outages:
        found, window = _judge_outage(obs, ctx.datasheet, outage, params)
        parts += found
        windows.append(window)
    evidence = {
        "expected": "no seq gap; messages sampled while the broker was down delivered after "
        "it came back, replayed=true, ts = sampling time (inside the outage); when the plant "
        f"changed by over {params.significant_change:.0%} of a tag's range for "
        f"{params.hold_s:g} s during the outage, such messages must exist",
        "saw": {
            "gaps": gaps[: params.max_gap_examples],
            "duplicates": duplicates,
            "outages": windows,
            "messages": len(records),
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry seq and ts",
    }
    return ctx.outcome(parts, evidence)


class PlcOutageParams(CheckParams):
    recovery_s: float = Field(default=10.0, gt=0)
    grace_s: float = Field(
        default=3.5, ge=0, description="a read in flight may take its timeout to fail"
    )
    detect_cap_s: float = Field(
        default=7.0,
        ge=0,
        description="good values before the gateway's first 'bad' report are excused up to this",
    )


def _first_bad_ts(records: list[TelemetryRecord], start_ms: int, end_ms: int) -> int | None:
    """When the gateway first said, by a `bad` quality, that it could not read the PLC."""
    for record in records:
        inside = record.ts is not None and start_ms <= record.ts <= end_ms
        if inside and any(q == "bad" for q in record.quality.values()):
            return record.ts
    return None


def _stale_good(record: TelemetryRecord) -> list[str]:
    """Metrics sent as good although the PLC could not be read."""
    return [name for name in record.metrics if record.quality.get(name, "good") == "good"]


@check("plc_outage_recovery", params=PlcOutageParams)
def plc_outage_recovery(ctx: CheckContext[PlcOutageParams]) -> CheckOutcome:
    """While the PLC is unreachable no value is sent as good; fresh values after it returns."""
    obs, params = ctx.observation, ctx.params
    outages = obs.actions_named("plc_outage")
    if not outages:
        return _no_action(ctx, "plc_outage")
    records = [r for r in obs.telemetry if r.ts is not None]
    parts: list[tuple[str, float, bool]] = []
    windows = []
    for outage in outages:
        # A read in flight when the link went down fails only at the gateway's timeout, and
        # a busy machine stretches that: until its first 'bad' report (up to detect_cap_s)
        # a good value is the last one it had, not a lie. After it, or without any 'bad'
        # report past grace_s, a good value during the outage is stale.
        cut = outage.started_ms + int(params.grace_s * 1000)
        first_bad = _first_bad_ts(records, outage.started_ms, outage.ended_ms)
        if first_bad is not None:
            cap = outage.started_ms + int(params.detect_cap_s * 1000)
            cut = max(cut, min(first_bad, cap))
        during = [r for r in records if r.ts is not None and cut <= r.ts <= outage.ended_ms]
        stale = [{"ts": r.ts, "metrics": _stale_good(r)} for r in during if _stale_good(r)]
        deadline = outage.ended_ms + params.recovery_s * 1000
        fresh = [
            r.received_ms
            for r in records
            if r.ts is not None
            and r.ts > outage.ended_ms
            and r.received_ms <= deadline
            and r.metrics
        ]
        # silence proves nothing: the part needs the gateway's word on the outage (a report
        # with a ts inside it, e.g. quality bad) or, from a quiet gateway, fresh values after
        spoke = bool(during) or bool(fresh)
        parts.append(
            (
                f"{len(stale)} messages sent stale values as good during the outage"
                + ("" if spoke else " (the gateway published nothing during or after it)"),
                1.0,
                spoke and not stale,
            )
        )
        parts.append(
            (
                f"fresh values within {params.recovery_s:g} s after the PLC returned",
                2.0,
                bool(fresh),
            )
        )
        windows.append(
            {
                "outage_ms": [outage.started_ms, outage.ended_ms],
                "first_bad_ms": first_bad,
                "judged_from_ms": cut,
                "reports_inside": len(during),
                "stale_good": stale[:5],
                "first_fresh_ms": fresh[0] if fresh else None,
            }
        )
    crashed = [e for e in obs.gateway_exits if not e.killed_by_grader]
    last_end = max(o.ended_ms for o in outages)
    alive_after = any(r.received_ms >= last_end for r in obs.telemetry)
    parts.append(
        (
            "the gateway kept running (no exit of its own, telemetry after the outage)",
            1.0,
            not crashed and alive_after,
        )
    )
    evidence = {
        "expected": "no good-quality values while the PLC is down; fresh values soon after; "
        "the gateway still publishing after the outage",
        "saw": {
            "outages": windows,
            "crashes": [{"ts_ms": e.ts_ms, "returncode": e.returncode} for e in crashed],
            "telemetry_after_outage": alive_after,
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry quality",
    }
    return ctx.outcome(parts, evidence)
