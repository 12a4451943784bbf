"""Platform checks: what the student's platform answers over its REST API.

Each kind has a probe that queries the platform (httpx) during the run and records the
answer as a ProbeRecord; evaluation is pure over those records and the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import Observation, ProbeRecord, TruthEvent, Value

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

Aggregation = Literal["mean", "min", "max"]


class PlatformParams(CheckParams):
    at: float | None = Field(
        default=None, ge=0, description="s after start when the grader queries; default the end"
    )


class AlarmParams(PlatformParams):
    metric: str
    within_s: float = Field(default=10.0, gt=0)
    event: str | None = Field(default=None, description="truth event kind; default any")


class IdentifierParams(PlatformParams):
    identifier: str = Field(min_length=3)
    device: str | None = Field(default=None, description="default: the lab's device")


class AggregateParams(PlatformParams):
    metric: str
    aggregation: Aggregation = "mean"
    interval_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=20.0, gt=0)
    tolerance: float | None = Field(default=None, ge=0, description="default: see docs")
    min_fraction: float = Field(default=0.8, gt=0, le=1)


# --- probes -------------------------------------------------------------------------


async def wait_for_platform(ctx: ProbeContext[Any], name: str) -> str | None:
    """Sleep until params.at (default 2 s before the end); the platform URL, or None."""
    at = ctx.params.at if ctx.params.at is not None else max(0.0, ctx.lab.duration_s - 2)
    await ctx.sleep_until(at)
    if ctx.env.platform_url is None:
        ctx.record(name, expected="a running platform", saw="the lab runs no platform", ok=False)
    return ctx.env.platform_url


async def platform_get(
    ctx: ProbeContext[Any], name: str, base: str, path: str, query: dict[str, Any]
) -> None:
    """GET path on the platform and record the status and JSON body."""
    token = ctx.env.platform_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
            response = await client.get(base.rstrip("/") + path, params=query)
    except httpx.HTTPError as error:
        ctx.record(name, expected="an answer", saw=f"{type(error).__name__}: {error}", ok=False)
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    status = response.status_code
    ctx.record(
        name,
        expected="HTTP 200",
        saw=f"HTTP {status}",
        ok=status == 200,
        url=path,
        status=status,
        body=body,
        **query,
    )


def probe_answer(obs: Observation, check_id: str, name: str) -> ProbeRecord | None:
    found = [p for p in obs.probes_of(check_id) if p.name == name]
    return found[-1] if found else None


def no_platform_answer(
    ctx: CheckContext[Any], record: ProbeRecord | None, where: str
) -> CheckOutcome:
    saw = record.saw if record is not None else "the grader did not query the platform"
    return CheckOutcome(
        0.0,
        ctx.spec.points,
        False,
        f"no answer from the platform: {saw}",
        {"expected": "HTTP 200", "saw": saw, "where": where},
    )


# --- platform_alarm_raised ------------------------------------------------------------


def _alarm_events(obs: Observation, kind: str | None) -> list[TruthEvent]:
    return sorted(
        (
            e
            for e in obs.truth_events
            if (kind is None or e.kind == kind) and e.device in ("", obs.device)
        ),
        key=lambda e: e.ts_ms,
    )


def _alarms_on(body: Any, metric: str, device: str) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        return []
    return [
        a
        for a in body
        if isinstance(a, dict)
        and a.get("metric") == metric
        and a.get("device") == device
        and isinstance(a.get("raised_ms"), int)
    ]


@check("platform_alarm_raised", params=AlarmParams)
def platform_alarm_raised(ctx: CheckContext[AlarmParams]) -> CheckOutcome:
    """The platform raised an alarm on the metric within within_s of the scenario event."""
    obs, params = ctx.observation, ctx.params
    record = probe_answer(obs, ctx.spec.id, "alarms")
    if record is None or not record.ok:
        return no_platform_answer(ctx, record, "GET /api/alarms")
    events = _alarm_events(obs, params.event)
    alarms = sorted(
        _alarms_on(record.detail.get("body"), params.metric, obs.device),
        key=lambda a: int(a["raised_ms"]),
    )
    event_ts = events[0].ts_ms if events else None
    window = params.within_s * 1000
    timely = [
        a
        for a in alarms
        if event_ts is not None and event_ts - 1000 <= a["raised_ms"] <= event_ts + window
    ]
    alarm_ts = (timely or alarms or [{}])[0].get("raised_ms")
    delay = alarm_ts - event_ts if alarm_ts is not None and event_ts is not None else None
    # the event is the grader's doing, not the student's: it earns nothing by itself
    what = f"raised within {params.within_s:g} s of the event"
    if not events:
        what += f" (no scenario event {params.event or ''} in the truth)".replace("  ", " ")
    parts = [
        (f"an alarm on {params.metric} for {obs.device}", 1.0, bool(alarms)),
        (what, 2.0, bool(timely)),
    ]
    evidence = {
        "expected": f"an alarm on {params.metric} raised within {params.within_s:g} s "
        "of the scenario event",
        "saw": {
            "event_ts": event_ts,
            "alarm_ts": alarm_ts,
            "delay_ms": delay,
            "alarms": [{k: a.get(k) for k in ("id", "rule", "state", "raised_ms")} for a in alarms][
                :5
            ],
        },
        "where": f"GET /api/alarms?tenant={obs.tenant}",
    }
    return ctx.outcome(parts, evidence)


@probe("platform_alarm_raised")
async def probe_alarms(ctx: ProbeContext[AlarmParams]) -> None:
    base = await wait_for_platform(ctx, "alarms")
    if base is not None:
        await platform_get(ctx, "alarms", base, "/api/alarms", {"tenant": ctx.tenant})


# --- platform_identifier_resolves -------------------------------------------------------


@check("platform_identifier_resolves", params=IdentifierParams)
def platform_identifier_resolves(ctx: CheckContext[IdentifierParams]) -> CheckOutcome:
    """The identifier resolves on the platform to the expected device."""
    obs, params = ctx.observation, ctx.params
    where = f"GET /api/resolve/{params.identifier}"
    record = probe_answer(obs, ctx.spec.id, "resolve")
    if record is None:
        return no_platform_answer(ctx, record, where)
    body = record.detail.get("body")
    body = body if isinstance(body, dict) else {}
    expected = params.device or obs.device
    parts = [
        (f"{params.identifier} resolves ({record.saw})", 1.0, record.ok),
        (f"bound to device {expected}", 2.0, record.ok and body.get("device") == expected),
        (f"owned by tenant {obs.tenant}", 1.0, record.ok and body.get("tenant") == obs.tenant),
    ]
    evidence = {
        "expected": {"identifier": params.identifier, "device": expected, "tenant": obs.tenant},
        "saw": {
            "status": record.detail.get("status"),
            "device": body.get("device"),
            "tenant": body.get("tenant"),
            "detail": body.get("detail"),
        },
        "where": where,
    }
    return ctx.outcome(parts, evidence)


@probe("platform_identifier_resolves")
async def probe_resolve(ctx: ProbeContext[IdentifierParams]) -> None:
    base = await wait_for_platform(ctx, "resolve")
    if base is not None:
        path = "/api/resolve/" + quote(ctx.params.identifier, safe="/")
        await platform_get(ctx, "resolve", base, path, {})


# --- platform_aggregate_matches_truth -----------------------------------------------------


def aggregate(values: Sequence[float], how: Aggregation) -> float:
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    return sum(values) / len(values)


def _numbers(values: Sequence[Value]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, str)]


def _bucket_tolerance(ctx: CheckContext[AggregateParams], truth: Sequence[float]) -> float:
    """Given, else the larger of the tag's tolerance and 5 % of the bucket's spread."""
    if ctx.params.tolerance is not None:
        return ctx.params.tolerance
    names = {t.name: t for t in ctx.datasheet.tags}
    tag = names.get(ctx.params.metric)
    base = (tag.tolerance if tag is not None else None) or 0.0
    return max(base, 0.05 * (max(truth) - min(truth)), 1e-6)


def compare_buckets(
    ctx: CheckContext[AggregateParams], points: Sequence[Any], interval_ms: int
) -> list[dict[str, Any]]:
    """One row per platform bucket that has truth samples: ts, expected, saw, tolerance, ok."""
    rows: list[dict[str, Any]] = []
    truth = ctx.observation.truth
    for point in points:
        if not isinstance(point, list | tuple) or len(point) != 2:
            continue
        ts, saw = point
        values = _numbers(truth.values_between(ctx.params.metric, ts, ts + interval_ms - 1))
        if not values or not isinstance(ts, int):
            continue
        expected = aggregate(values, ctx.params.aggregation)
        tolerance = _bucket_tolerance(ctx, values)
        ok = (
            isinstance(saw, int | float)
            and not isinstance(saw, bool)
            and math.isfinite(saw)
            and abs(saw - expected) <= tolerance
        )
        row = {"ts": ts, "expected": round(expected, 6), "saw": saw, "tolerance": tolerance}
        rows.append({**row, "ok": ok})
    return rows


@check("platform_aggregate_matches_truth", params=AggregateParams)
def platform_aggregate_matches_truth(ctx: CheckContext[AggregateParams]) -> CheckOutcome:
    """The platform's per-interval aggregate equals the same aggregate of the ground truth."""
    obs, params = ctx.observation, ctx.params
    record = probe_answer(obs, ctx.spec.id, "series")
    where = f"GET /api/devices/{obs.tenant}/{obs.device}/series"
    if record is None or not record.ok:
        return no_platform_answer(ctx, record, where)
    body = record.detail.get("body")
    points = body.get("points", []) if isinstance(body, dict) else []
    interval_ms = int(record.detail.get("interval", params.interval_s * 1000))
    rows = compare_buckets(ctx, points, interval_ms)
    matching = sum(1 for row in rows if row["ok"])
    fraction = matching / len(rows) if rows else 0.0
    parts = [
        (f"{len(rows)} {params.aggregation} buckets of {params.metric} returned", 1.0, bool(rows)),
        (
            f"{matching} of {len(rows)} buckets equal the truth's {params.aggregation}",
            3.0,
            bool(rows) and fraction >= params.min_fraction,
        ),
    ]
    wrong = [row for row in rows if not row["ok"]]
    evidence = {
        "expected": f"at least {params.min_fraction:.0%} of the {params.aggregation} per "
        f"{params.interval_s:g} s of {params.metric} equal the simulator's within tolerance",
        "saw": {"matching": round(fraction, 3), "buckets": rows[:20], "first_wrong": wrong[:1]},
        "where": f"{where}?metric={params.metric}&aggregation={params.aggregation}"
        f"&interval={interval_ms}&start={record.detail.get('start')}"
        f"&end={record.detail.get('end')}",
    }
    return ctx.outcome(parts, evidence)


@probe("platform_aggregate_matches_truth")
async def probe_series(ctx: ProbeContext[AggregateParams]) -> None:
    base = await wait_for_platform(ctx, "series")
    if base is None:
        return
    interval = int(ctx.params.interval_s * 1000)
    end = ctx.now_ms() // interval * interval - interval  # whole buckets the store has
    start = end - int(ctx.params.window_s * 1000) // interval * interval
    query = {
        "metric": ctx.params.metric,
        "start": start,
        "end": end,
        "interval": interval,
        "aggregation": ctx.params.aggregation,
    }
    await platform_get(ctx, "series", base, f"/api/devices/{ctx.tenant}/{ctx.device}/series", query)
