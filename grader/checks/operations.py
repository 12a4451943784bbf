"""Operations and predictive-maintenance checks: the platform's alarms against what the
grader knows happened (a hidden truth value crossing its limit, a gateway it killed, a
sensor it stalled).

Each probe asks the platform once, at `at` (default 2 s before the end), for the tenant's
alarms and rules; evaluation is pure over those answers, the ground truth and the
grader's own scenario record. Alarm times are the platform's `raised_ms`/`cleared_ms`
(the sampling time of the message that raised or cleared it, or the arrival of a status).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
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
from grader.observation import ActionRecord, Observation, TruthEvent, status_state

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

Alarm = dict[str, Any]
AfterTruthPart = Literal["timely", "no_early"]
OperationsPart = Literal["offline", "stale", "clean"]
AFTER_TRUTH_PARTS: tuple[AfterTruthPart, ...] = ("timely", "no_early")
OPERATIONS_PARTS: tuple[OperationsPart, ...] = ("offline", "stale", "clean")
_SHOWN = ("rule", "kind", "metric", "state", "raised_ms", "cleared_ms")
SAMPLING_SLACK_MS = 300  # a gateway may stamp a read when it sends it, before the answer


class AfterTruthParams(PlatformParams):
    tag: str = Field(min_length=1, description="truth value watched (may be truth-only)")
    above: float = Field(description="the limit: the truth crosses it upward")
    within_s: float = Field(default=6.0, gt=0, description="alarm active this soon after")
    metric: str | None = Field(default=None, description="only alarms on it; default any")
    parts: tuple[AfterTruthPart, ...] = Field(default=AFTER_TRUTH_PARTS, min_length=1)


class OperationsParams(PlatformParams):
    parts: tuple[OperationsPart, ...] = Field(default=OPERATIONS_PARTS, min_length=1)
    offline_within_s: float = Field(default=5.0, gt=0, description="offline alarm after a kill")
    stale_within_s: float = Field(default=6.0, gt=0, description="alarm after a stall begins")
    clear_within_s: float = Field(default=8.0, gt=0, description="cleared after recovery")


# --- shared -------------------------------------------------------------------------


def _device_alarms(body: Any, device: str, metric: str | None = None) -> list[Alarm]:
    if not isinstance(body, list):
        return []
    alarms = [
        a
        for a in body
        if isinstance(a, dict)
        and a.get("device") == device
        and isinstance(a.get("raised_ms"), int)
        and (metric is None or a.get("metric") == metric)
    ]
    return sorted(alarms, key=lambda a: int(a["raised_ms"]))


def _shown(alarms: Iterable[Alarm], limit: int = 8) -> list[dict[str, Any]]:
    return [{k: a.get(k) for k in _SHOWN} for a in list(alarms)[:limit]]


def _cleared(alarm: Alarm) -> int | None:
    cleared = alarm.get("cleared_ms")
    return cleared if isinstance(cleared, int) and alarm.get("state") == "cleared" else None


async def _alarms_and_rules(ctx: ProbeContext[Any]) -> None:
    base = await wait_for_platform(ctx, "alarms")
    if base is not None:
        await platform_get(ctx, "alarms", base, "/api/alarms", {"tenant": ctx.tenant})
        await platform_get(ctx, "rules", base, "/api/rules", {"tenant": ctx.tenant})


# --- platform_alarm_after_truth -------------------------------------------------------


def crossing_ms(obs: Observation, tag: str, above: float) -> int | None:
    """When the truth value first went above the limit during the run (None: never)."""
    for ts, values in obs.truth.samples:
        value = values.get(tag)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > above:
            return ts
    return None


def _device_rules(body: Any, device: str) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        return []
    return [r for r in body if isinstance(r, dict) and r.get("device") in (device, "*")]


@check("platform_alarm_after_truth", params=AfterTruthParams)
def platform_alarm_after_truth(ctx: CheckContext[AfterTruthParams]) -> CheckOutcome:
    """An alarm is active within within_s after a truth value crosses its limit, none before."""
    obs, params = ctx.observation, ctx.params
    alarms_record = probe_answer(obs, ctx.spec.id, "alarms")
    if alarms_record is None or not alarms_record.ok:
        return no_platform_answer(ctx, alarms_record, "GET /api/alarms")
    rules_record = probe_answer(obs, ctx.spec.id, "rules")
    rules = _device_rules(rules_record.detail.get("body") if rules_record else None, obs.device)
    alarms = _device_alarms(alarms_record.detail.get("body"), obs.device, params.metric)
    crossed = crossing_ms(obs, params.tag, params.above)
    deadline = crossed + int(params.within_s * 1000) if crossed is not None else None
    active_in_time = [
        a
        for a in alarms
        if crossed is not None
        and deadline is not None
        and a["raised_ms"] <= deadline
        and ((c := _cleared(a)) is None or c >= crossed)
    ]
    early = [a for a in alarms if crossed is None or a["raised_ms"] < crossed]
    never = " (the truth never crossed the limit: a grader issue, not yours)" if not crossed else ""
    available = {
        "timely": (
            f"an alarm active within {params.within_s:g} s after {params.tag} crossed "
            f"{params.above:g}{never}",
            1.0,
            bool(active_in_time),
        ),
        "no_early": (
            "no alarm raised before the crossing"
            + ("" if rules else " (no alarm rule for the device: nothing to judge)")
            + never,
            1.0,
            bool(rules) and crossed is not None and not early,
        ),
    }
    first = alarms[0]["raised_ms"] if alarms else None
    evidence = {
        "expected": f"an alarm for {obs.device} active between the moment {params.tag} "
        f"crossed {params.above:g} and {params.within_s:g} s later, and none raised before",
        "saw": {
            "crossing_ts": crossed,
            "first_alarm_ts": first,
            "first_alarm_delay_ms": first - crossed if first and crossed else None,
            "early_alarms": _shown(early, 5),
            "alarms": _shown(alarms),
            "rules": len(rules),
            "queried_ts": alarms_record.ts_ms,
        },
        "where": f"GET /api/alarms?tenant={obs.tenant}",
    }
    return ctx.outcome([available[p] for p in params.parts], evidence)


@probe("platform_alarm_after_truth")
async def probe_after_truth(ctx: ProbeContext[AfterTruthParams]) -> None:
    await _alarms_and_rules(ctx)


# --- platform_operations_alarms -------------------------------------------------------


def _kills(obs: Observation) -> list[ActionRecord]:
    return [a for a in obs.actions if a.action == "gateway_kill"]


def _stalls(obs: Observation) -> list[TruthEvent]:
    return sorted(
        (
            e
            for e in obs.truth_events
            if e.kind == "sensor_stuck" and e.device in ("", obs.device) and e.detail.get("tag")
        ),
        key=lambda e: e.ts_ms,
    )


def stall_end(obs: Observation, stall: TruthEvent) -> int:
    """When the stuck value moved again: the first truth sample after the stall's start
    that differs from it. The simulator ends a fault after `duration` of simulated time,
    which a busy machine stretches or (catching up) shrinks in wall time."""
    tag = str(stall.detail["tag"])
    stuck = obs.truth.value_at(tag, stall.ts_ms)
    start = bisect.bisect_right(obs.truth.times, stall.ts_ms)
    for ts, values in obs.truth.samples[start:]:
        if tag in values and values[tag] != stuck:
            return ts
    return stall.ts_ms + int(float(stall.detail.get("duration_s", 0.0)) * 1000)


def back_online_ms(obs: Observation, restarted_ms: int) -> int:
    """When the restarted gateway was back: its first `online` status the grader saw after
    the restart (a busy machine can take seconds to start it), else the restart itself."""
    return next(
        (
            m.received_ms
            for m in obs.of_kind("status")
            if m.received_ms >= restarted_ms and status_state(m) == "online"
        ),
        restarted_ms,
    )


def _offline_parts(
    obs: Observation, alarms: list[Alarm], params: OperationsParams
) -> list[tuple[str, float, bool]]:
    parts: list[tuple[str, float, bool]] = []
    offline = [a for a in alarms if a.get("kind") == "offline"]
    for kill in _kills(obs):
        start, back = kill.started_ms, kill.ended_ms
        deadline = back_online_ms(obs, back) + params.clear_within_s * 1000
        raised = [
            a
            for a in offline
            if start - 1000 <= a["raised_ms"] <= start + params.offline_within_s * 1000
        ]
        cleared = [a for a in raised if (c := _cleared(a)) is not None and back <= c <= deadline]
        when = f"the kill at {kill.detail.get('at_s', '?')} s"
        parts.append(
            (f"offline alarm within {params.offline_within_s:g} s of {when}", 1.0, bool(raised))
        )
        parts.append(
            (
                f"that alarm cleared within {params.clear_within_s:g} s of the gateway's "
                "return (its first online status after the restart)",
                1.0,
                bool(cleared),
            )
        )
    if not parts and any(a.action == "gateway_kill_skipped" for a in obs.actions):
        # practice mode: the student runs the gateway; a skipped kill costs nothing
        parts.append(("gateway_kill skipped in practice mode: not judged", 1.0, True))
    elif not parts:
        parts.append(("a gateway_kill to judge (none was played: see evidence)", 1.0, False))
    return parts


def _stale_parts(
    obs: Observation, alarms: list[Alarm], params: OperationsParams
) -> list[tuple[str, float, bool]]:
    parts: list[tuple[str, float, bool]] = []
    for stall in _stalls(obs):
        tag, start, end = str(stall.detail["tag"]), stall.ts_ms, stall_end(obs, stall)
        raised = [
            a
            for a in alarms
            if a.get("metric") == tag
            and start <= a["raised_ms"] <= start + params.stale_within_s * 1000
        ]
        cleared = [
            a
            for a in raised
            if (c := _cleared(a)) is not None
            and end - SAMPLING_SLACK_MS <= c <= end + params.clear_within_s * 1000
        ]
        parts.append(
            (
                f"alarm on {tag} within {params.stale_within_s:g} s of its stall",
                1.0,
                bool(raised),
            )
        )
        parts.append(
            (
                f"that alarm cleared within {params.clear_within_s:g} s of the stall's end",
                1.0,
                bool(cleared),
            )
        )
    if not parts:
        parts.append(("a sensor stall to judge (the truth has none: see evidence)", 1.0, False))
    return parts


def explained(obs: Observation, alarm: Alarm, params: OperationsParams) -> bool:
    """An alarm the scenario accounts for: offline/silence during a kill, or an alarm on the
    stalled metric during a stall (each until the recovery plus clear_within_s)."""
    raised, slack = alarm["raised_ms"], int(params.clear_within_s * 1000)
    if alarm.get("kind") in ("offline", "stale"):
        return any(k.started_ms - 1000 <= raised <= k.ended_ms + slack for k in _kills(obs))
    return any(
        alarm.get("metric") == s.detail.get("tag")
        and s.ts_ms <= raised <= stall_end(obs, s) + slack
        for s in _stalls(obs)
    )


@check("platform_operations_alarms", params=OperationsParams)
def platform_operations_alarms(ctx: CheckContext[OperationsParams]) -> CheckOutcome:
    """Offline and stale-data alarms at the grader's kills and stalls, cleared, no other.

    The times come from the grader's scenario record (kills) and the truth (stalls)."""
    obs, params = ctx.observation, ctx.params
    record = probe_answer(obs, ctx.spec.id, "alarms")
    if record is None or not record.ok:
        return no_platform_answer(ctx, record, "GET /api/alarms")
    alarms = _device_alarms(record.detail.get("body"), obs.device)
    others = [a for a in alarms if not explained(obs, a, params)]
    parts: list[tuple[str, float, bool]] = []
    if "offline" in params.parts:
        parts += _offline_parts(obs, alarms, params)
    if "stale" in params.parts:
        parts += _stale_parts(obs, alarms, params)
    if "clean" in params.parts:
        what = "no alarm the scenario does not explain"
        if len(others) == len(alarms):
            what += " (and at least one alarm it does, to show the monitoring works)"
        parts.append((what, 1.0, bool(alarms) and len(others) < len(alarms) and not others))
    evidence = {
        "expected": "an offline alarm for each gateway kill and an alarm on each stalled "
        "metric, raised in time and cleared after recovery; no other alarm",
        "saw": {
            "kills": [
                {
                    "killed_ts": k.started_ms,
                    "restarted_ts": k.ended_ms,
                    "online_again_ts": back_online_ms(obs, k.ended_ms),
                }
                for k in _kills(obs)
            ],
            "skipped_kills": sum(a.action == "gateway_kill_skipped" for a in obs.actions),
            "stalls": [
                {"tag": s.detail.get("tag"), "from_ts": s.ts_ms, "until_ts": stall_end(obs, s)}
                for s in _stalls(obs)
            ],
            "alarms": _shown(alarms, 10),
            "unexplained": _shown(others, 5),
            "queried_ts": record.ts_ms,
        },
        "where": f"GET /api/alarms?tenant={obs.tenant}",
    }
    return ctx.outcome(parts, evidence)


@probe("platform_operations_alarms")
async def probe_operations(ctx: ProbeContext[OperationsParams]) -> None:
    await _alarms_and_rules(ctx)
