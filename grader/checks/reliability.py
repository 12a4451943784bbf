"""Reliability checks: no loss across a broker outage, recovery from a PLC outage."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import ActionRecord, Observation


def _telemetry(obs: Observation) -> list[tuple[int, dict[str, Any]]]:
    """(received_ms, payload) of every telemetry message that is a JSON object."""
    out = []
    for message in obs.of_kind("telemetry"):
        data = message.json()
        if isinstance(data, dict):
            out.append((message.received_ms, data))
    return out


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


def _seq_gaps(payloads: list[dict[str, Any]]) -> tuple[list[list[int]], int]:
    seqs = sorted({p["seq"] for p in payloads if isinstance(p.get("seq"), int)})
    gaps = [[a + 1, b - 1] for a, b in itertools.pairwise(seqs) if b - a > 1]
    duplicates = sum(1 for p in payloads if isinstance(p.get("seq"), int)) - len(seqs)
    return gaps, duplicates


def _in_window(ts: object, outage: ActionRecord) -> bool:
    return isinstance(ts, int) and outage.started_ms <= ts <= outage.ended_ms


@check("no_loss_across_broker_outage", params=OutageParams)
def no_loss_across_broker_outage(ctx: CheckContext[OutageParams]) -> CheckOutcome:
    """Store-and-forward: seq contiguous, outage samples replayed later with their own ts."""
    obs, params = ctx.observation, ctx.params
    outages = obs.actions_named("broker_outage")
    if not outages:
        return _no_action(ctx, "broker_outage")
    received = _telemetry(obs)
    payloads = [p for _, p in received]
    gaps, duplicates = _seq_gaps(payloads)
    parts: list[tuple[str, float, bool]] = [
        (
            f"seq contiguous ({len(gaps)} gaps, {duplicates} duplicates)",
            2.0,
            bool(payloads) and not gaps,
        ),
    ]
    windows = []
    for outage in outages:
        inside = [(r, p) for r, p in received if _in_window(p.get("ts"), outage)]
        late = [(r, p) for r, p in inside if r >= outage.ended_ms]
        deadline = outage.ended_ms + params.replay_within_s * 1000
        marked = [p for r, p in late if p.get("replayed") is True and r <= deadline]
        ts_kept = bool(late) and all(p.get("ts", 0) < r - 200 for r, p in late)
        parts.append(
            (
                f"{len(marked)} messages sampled during the outage replayed with replayed=true",
                1.0,
                bool(late) and len(marked) == len(late),
            )
        )
        parts.append(("replayed messages keep their sampling ts", 1.0, ts_kept))
        windows.append(
            {
                "outage_ms": [outage.started_ms, outage.ended_ms],
                "sampled_inside": len(inside),
                "delivered_after": len(late),
                "marked_replayed": len(marked),
            }
        )
    evidence = {
        "expected": "no seq gap; messages sampled while the broker was down delivered after "
        "it came back, replayed=true, ts = sampling time",
        "saw": {
            "gaps": gaps[: params.max_gap_examples],
            "duplicates": duplicates,
            "outages": windows,
            "messages": len(payloads),
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry seq and ts",
    }
    return ctx.outcome(parts, evidence)


class PlcOutageParams(CheckParams):
    recovery_s: float = Field(default=10.0, gt=0)
    grace_s: float = Field(
        default=3.5, ge=0, description="a read in flight may take its timeout to fail"
    )


def _stale_good(payload: dict[str, Any]) -> list[str]:
    """Metrics sent as good although the PLC could not be read."""
    metrics = payload.get("metrics") or {}
    quality = payload.get("quality") or {}
    return [name for name in metrics if quality.get(name, "good") == "good"]


@check("plc_outage_recovery", params=PlcOutageParams)
def plc_outage_recovery(ctx: CheckContext[PlcOutageParams]) -> CheckOutcome:
    """While the PLC is unreachable no value is sent as good; fresh values after it returns."""
    obs, params = ctx.observation, ctx.params
    outages = obs.actions_named("plc_outage")
    if not outages:
        return _no_action(ctx, "plc_outage")
    received = _telemetry(obs)
    parts: list[tuple[str, float, bool]] = []
    windows = []
    for outage in outages:
        cut = outage.started_ms + int(params.grace_s * 1000)
        stale = [
            {"ts": p["ts"], "metrics": _stale_good(p)}
            for _, p in received
            if isinstance(p.get("ts"), int) and cut <= p["ts"] <= outage.ended_ms and _stale_good(p)
        ]
        deadline = outage.ended_ms + params.recovery_s * 1000
        fresh = [
            r
            for r, p in received
            if isinstance(p.get("ts"), int)
            and p["ts"] > outage.ended_ms
            and r <= deadline
            and p.get("metrics")
        ]
        parts.append(
            (f"{len(stale)} messages sent stale values as good during the outage", 1.0, not stale)
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
                "stale_good": stale[:5],
                "first_fresh_ms": fresh[0] if fresh else None,
            }
        )
    crashed = [e for e in obs.gateway_exits if not e.killed_by_grader]
    parts.append(("the gateway kept running", 1.0, not crashed))
    evidence = {
        "expected": "no good-quality values while the PLC is down; fresh values soon after",
        "saw": {
            "outages": windows,
            "crashes": [{"ts_ms": e.ts_ms, "returncode": e.returncode} for e in crashed],
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry quality",
    }
    return ctx.outcome(parts, evidence)
