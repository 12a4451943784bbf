"""values_match_truth: what the gateway sent, time-aligned on ts, against the simulator.

When a tag does not match, the check re-decodes the truth's registers under the usual
mistakes (other word order, scale/offset missing, neighbouring address, stale value) and
names the one that explains what the gateway sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import Observation, TruthSeries, Value
from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import RegisterCodecError
from iiotlab.registers import WORD_ORDERS, RegisterFormat, decode, encode

Sample = tuple[int, Value]  # (ts_ms, value the gateway sent)


class ValuesParams(CheckParams):
    tags: list[str] | None = Field(default=None, description="default: every readable tag")
    tolerance: dict[str, float] = Field(default_factory=dict)
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    align_ms: int = Field(default=600, ge=0, description="ts may be off by a sampling tick")
    chart_points: int = Field(default=120, ge=10)


def gateway_samples(obs: Observation, tag: str) -> list[Sample]:
    """(ts, value) of a metric in every telemetry message sampled after the gateway started."""
    out: list[Sample] = []
    for message in obs.of_kind("telemetry"):
        data = message.json()
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            continue
        value, ts = data["metrics"].get(tag), data.get("ts")
        if value is not None and isinstance(ts, int) and ts >= obs.started_ms - 1000:
            out.append((ts, value))
    return sorted(out, key=lambda item: item[0])


def _close(a: Value, b: Value | None, tolerance: float) -> bool:
    if b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tolerance + 1e-6 * abs(b)


def _truth_near(truth: TruthSeries, tag: str, ts: int, *, align_ms: int) -> list[Value]:
    near = truth.values_between(tag, ts - align_ms, ts + align_ms)
    at = truth.value_at(tag, ts)
    return [*near, at] if at is not None else near


def _fraction(
    samples: Sequence[Sample], expected: Callable[[int], Sequence[Value | None]], tolerance: float
) -> float:
    if not samples:
        return 0.0
    ok = sum(1 for ts, v in samples if any(_close(v, e, tolerance) for e in expected(ts)))
    return ok / len(samples)


def _fmt(tag: TagSpec) -> RegisterFormat | None:
    m = tag.modbus
    if m is None or m.type in ("bool", "string", "bits16"):
        return None
    return RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1)


def _register_image(sheet: Datasheet, truth: TruthSeries, ts: int, table: str) -> dict[int, int]:
    image: dict[int, int] = {}
    for tag in sheet.tags:
        fmt, value = _fmt(tag), truth.value_at(tag.name, ts)
        if fmt is None or tag.modbus is None or tag.modbus.table != table:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                registers = encode(value, fmt)
            except RegisterCodecError:
                continue
            for i, register in enumerate(registers):
                image[tag.modbus.address + i] = register
    return image


Explains = Callable[[int, Value], bool]  # (ts, value sent) -> does this mistake explain it?


def _alternatives(
    sheet: Datasheet, tag: TagSpec, truth: TruthSeries, tolerance: float, align_ms: int
) -> list[tuple[str, Explains]]:
    """Mistakes to try, each a predicate on one sample.

    A decoding mistake (word order, scale, offset) is undone: the sent value is encoded back
    with the gateway's wrong format and decoded with the datasheet's, then compared with the
    truth. Going the other way (truth through the wrong format) is unusable: a swapped word
    order turns noise in the low word into jumps far larger than any tolerance.
    """
    fmt = _fmt(tag)
    if fmt is None or tag.modbus is None:
        return []
    address, table = tag.modbus.address, tag.modbus.table

    def undone(wrong: RegisterFormat) -> Explains:
        def explains(ts: int, sent: Value) -> bool:
            if not isinstance(sent, int | float) or isinstance(sent, bool):
                return False
            try:
                corrected = decode(encode(sent, wrong), fmt)
            except (RegisterCodecError, OverflowError, ValueError):
                return False
            near = _truth_near(truth, tag.name, ts, align_ms=align_ms)
            return any(_close(corrected, e, tolerance) for e in near)

        return explains

    def shifted(delta: int) -> Explains:
        def explains(ts: int, sent: Value) -> bool:
            image = _register_image(sheet, truth, ts, table)
            wanted = [address + delta + i for i in range(fmt.count)]
            if any(a not in image for a in wanted):
                return False  # nothing mapped there: no evidence either way
            return _close(sent, decode([image[a] for a in wanted], fmt), tolerance)

        return explains

    # An address shift is tried first: it is an exact, forward prediction, while undoing a
    # decoding mistake tolerates noise and so could also fit a shifted read.
    alts: list[tuple[str, Explains]] = []
    for delta in (1, -1, 2, -2):
        alts.append(
            (
                f"wrong address: read {table} {address + delta} instead of {address}"
                + (" (1-based vs 0-based?)" if abs(delta) == 1 else ""),
                shifted(delta),
            )
        )
    for order in WORD_ORDERS:
        if order != fmt.word_order and fmt.count > 1:
            alts.append(
                (
                    f"word order: decoded as {order}, the datasheet says {fmt.word_order}",
                    undone(replace(fmt, word_order=order)),
                )
            )
    if fmt.scale != 1 or fmt.offset != 0:
        alts.append(
            (
                "scale and offset not applied (raw register value sent)",
                undone(replace(fmt, scale=1.0, offset=0.0)),
            )
        )
    if fmt.offset != 0:
        alts.append((f"offset {fmt.offset:g} not applied", undone(replace(fmt, offset=0.0))))
    if fmt.scale != 1:
        alts.append((f"scale {fmt.scale:g} not applied", undone(replace(fmt, scale=1.0))))
        alts.append(
            (
                f"divided by the scale {fmt.scale:g} instead of multiplying",
                undone(replace(fmt, scale=1 / fmt.scale)),
            )
        )
    return alts


def diagnose(
    sheet: Datasheet,
    tag: TagSpec,
    samples: Sequence[Sample],
    truth: TruthSeries,
    tolerance: float,
    min_fraction: float,
    align_ms: int = 600,
) -> str:
    """Name the mistake that explains the samples, or say what is known."""
    if not samples:
        return "never published"

    def share(predicate: Explains) -> float:
        return sum(1 for ts, v in samples if predicate(ts, v)) / len(samples)

    def explains(expected: Callable[[int], Value | None]) -> bool:
        return _fraction(samples, lambda ts: [expected(ts)], tolerance) >= min_fraction

    for label, predicate in _alternatives(sheet, tag, truth, tolerance, align_ms):
        if share(predicate) >= min_fraction:
            return label
    for other in sheet.tags:
        if other.name != tag.name and explains(partial(truth.value_at, other.name)):
            return f"wrong tag: the values are those of '{other.name}'"
    sent = {v for _, v in samples}
    span = truth.values_between(tag.name, samples[0][0], samples[-1][0])
    if len(sent) == 1 and len(set(span)) > 1:
        return "stale: the same value was sent while the plant's value changed"

    def lagging(lag_s: int, ts: int) -> Value | None:
        return truth.value_at(tag.name, ts - lag_s * 1000)

    for lag_s in (1, 2, 5, 10):
        if explains(partial(lagging, lag_s)):
            return (
                f"stale: the values lag the plant by about {lag_s} s (ts is not the sampling time)"
            )
    return "no known mistake explains the values; compare the chart"


def _series(samples: Sequence[Sample], truth: TruthSeries, tag: str, points: int) -> dict[str, Any]:
    step = max(1, len(samples) // points)
    picked = samples[::step]
    return {
        "ts": [ts for ts, _ in picked],
        "sent": [v for _, v in picked],
        "truth": [truth.value_at(tag, ts) for ts, _ in picked],
    }


def _graded_tags(ctx: CheckContext[ValuesParams]) -> list[TagSpec]:
    sheet = ctx.datasheet
    if ctx.params.tags is not None:
        return [sheet.tag(name) for name in ctx.params.tags if name in {t.name for t in sheet.tags}]
    return [t for t in sheet.tags if t.modbus is not None or t.opcua is not None]


@check("values_match_truth", params=ValuesParams)
def values_match_truth(ctx: CheckContext[ValuesParams]) -> CheckOutcome:
    """Each tag's values, aligned on ts, equal the simulator's within the tag's tolerance."""
    obs, params = ctx.observation, ctx.params
    parts: list[tuple[str, float, bool]] = []
    per_tag: dict[str, Any] = {}
    for tag in _graded_tags(ctx):
        tolerance = params.tolerance.get(tag.name, tag.tolerance or 0.0)
        samples = gateway_samples(obs, tag.name)
        near = partial(_truth_near, obs.truth, tag.name, align_ms=params.align_ms)
        fraction = _fraction(samples, near, tolerance)
        ok = bool(samples) and fraction >= params.min_fraction
        entry: dict[str, Any] = {
            "samples": len(samples),
            "matching": round(fraction, 3),
            "tolerance": tolerance,
        }
        if samples:
            ts, sent = samples[len(samples) // 2]
            entry.update(expected=obs.truth.value_at(tag.name, ts), saw=sent, where_ts=ts)
        if not ok:
            entry["diagnosis"] = diagnose(
                ctx.datasheet,
                tag,
                samples,
                obs.truth,
                tolerance,
                params.min_fraction,
                params.align_ms,
            )
            entry["series"] = _series(samples, obs.truth, tag.name, params.chart_points)
        per_tag[tag.name] = entry
        label = f"{tag.name}: {fraction:.0%} of {len(samples)} samples match"
        if not ok:
            label += f" ({entry['diagnosis']})"
        parts.append((label, 1.0, ok))
    evidence = {
        "expected": f"at least {params.min_fraction:.0%} of each tag's samples equal the "
        "simulator's value at the message ts (within the tag's tolerance)",
        "saw": per_tag,
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry",
    }
    return ctx.outcome(parts or [("no tags to grade", 1.0, False)], evidence)
