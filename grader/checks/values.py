"""values_match_truth: what the gateway sent, time-aligned on ts, against the simulator.

A sample matches when the simulator served its value at some moment the read can have
happened: within `align_ms` of its ts, and also anywhere from the gateway's previous read
of the tag (the ts of the message before it, less `align_ms`: reads come one after
another) until the message reached the grader (a read cannot come after its message
arrived; not for a replayed message, which waited in a buffer). On a busy machine the
plant answers late and a gateway processes late, so a stamp can be seconds from the read
it labels: a heartbeat stamped "now" repeats a value read before, a stamp taken around a
request precedes the answer. These bounds come from the order of the gateway's own
messages and the grader's clock, and no wrong decoding, wrong tag or value late by more
than a report interval fits them.

When a tag does not match, the check tries the usual mistakes (other word order,
scale/offset missing, neighbouring address, another tag, stale value) and names the one
that explains what the gateway sent, or every one that explains it equally well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.observation import Observation, TruthSeries, Value
from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import RegisterCodecError
from iiotlab.registers import WORD_ORDERS, RegisterFormat, decode, encode

Sample = tuple[int, Value]  # (ts_ms, value the gateway sent)
Read = tuple[int, Value, int, int]  # (ts_ms, value, earliest and latest the read can have been)


class ValuesParams(CheckParams):
    tags: list[str] | None = Field(default=None, description="default: every readable tag")
    tolerance: dict[str, float] = Field(default_factory=dict)
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    align_ms: int = Field(default=600, ge=0, description="ts may be off by a sampling tick")
    chart_points: int = Field(default=120, ge=10)


def gateway_reads(obs: Observation, tag: str, align_ms: int = 600) -> list[Read]:
    """(ts, value) of a metric in every telemetry message sampled after the gateway started,
    with the earliest and latest moment of its read.

    Earliest: align_ms before its own ts or before the ts of the previous message (in
    arrival order) that carried the tag, whichever is earlier. Latest: align_ms after its
    ts or its arrival at the grader, whichever is later; a replayed message waited in the
    gateway's buffer, so its arrival says nothing about when it was read.
    """
    out: list[Read] = []
    previous: int | None = None
    for record in sorted(obs.telemetry, key=lambda r: r.received_ms):
        value, ts = record.metrics.get(tag), record.ts
        if value is None or ts is None:
            continue
        earliest = min(ts, ts if previous is None else previous) - align_ms
        previous = ts
        if ts >= obs.started_ms - 1000:
            latest = ts + align_ms if record.replayed else max(ts + align_ms, record.received_ms)
            out.append((ts, value, earliest, latest))
    return sorted(out, key=lambda item: item[0])


def _close(a: Value, b: Value | None, tolerance: float) -> bool:
    if b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tolerance + 1e-6 * abs(b)


def _telling(a: Value, b: Value | None, tolerance: float) -> bool:
    """Close, and evidence of it: tiny values agree relatively, not just within tolerance.

    Anything near zero is within an absolute tolerance of anything else near zero (a
    float32 whose bytes are reversed is a denormal around 1e-41, and so is an odd register
    pair), so such a match explains nothing unless the two values really are the same.
    """
    if b is None or not _close(a, b, tolerance):
        return False
    if isinstance(a, bool | str) or isinstance(b, bool | str):
        return True
    size = max(abs(a), abs(b))
    return size > tolerance or abs(a - b) <= 1e-3 * size


def _truth_near(truth: TruthSeries, tag: str, ts: int, *, align_ms: int) -> list[Value]:
    return _truth_between(truth, tag, ts, ts - align_ms, ts + align_ms)


def _truth_between(truth: TruthSeries, tag: str, ts: int, start: int, end: int) -> list[Value]:
    """The values the simulator served from start to end, and the one it served at ts."""
    near = truth.values_between(tag, start, end)
    at = truth.value_at(tag, ts)
    return [*near, at] if at is not None else near


def _matches(read: Read, truth: TruthSeries, tag: str, tolerance: float) -> bool:
    ts, value, earliest, latest = read
    return any(
        _close(value, e, tolerance) for e in _truth_between(truth, tag, ts, earliest, latest)
    )


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


def _decoding_mistakes(
    tag: TagSpec, truth: TruthSeries, tolerance: float, align_ms: int
) -> list[tuple[str, Explains]]:
    """Decoding mistakes, each undone on the sent value and compared with the truth.

    The sent value is encoded back with the gateway's wrong format and decoded with the
    datasheet's. Going the other way (truth through the wrong format) is unusable: a swapped
    word order turns noise in the low word into jumps far larger than any tolerance.
    """
    fmt = _fmt(tag)
    if fmt is None:
        return []

    def undone(wrong: RegisterFormat) -> Explains:
        def explains(ts: int, sent: Value) -> bool:
            if not isinstance(sent, int | float) or isinstance(sent, bool):
                return False
            try:
                corrected = decode(encode(sent, wrong), fmt)
            except (RegisterCodecError, OverflowError, ValueError):
                return False
            near = _truth_near(truth, tag.name, ts, align_ms=align_ms)
            return any(_telling(corrected, e, tolerance) for e in near)

        return explains

    mistakes: list[tuple[str, Explains]] = []
    for order in WORD_ORDERS:
        if order != fmt.word_order and fmt.count > 1:
            wrong = replace(fmt, word_order=order)
            label = f"word order: decoded as {order}, the datasheet says {fmt.word_order}"
            mistakes.append((label, undone(wrong)))
    if fmt.scale != 1 or fmt.offset != 0:
        label = "scale and offset not applied (raw register value sent)"
        mistakes.append((label, undone(replace(fmt, scale=1.0, offset=0.0))))
    if fmt.offset != 0 and fmt.scale != 1:  # with only one of them, the same as above
        mistakes.append((f"offset {fmt.offset:g} not applied", undone(replace(fmt, offset=0.0))))
        mistakes.append((f"scale {fmt.scale:g} not applied", undone(replace(fmt, scale=1.0))))
    if fmt.scale != 1:
        label = f"divided by the scale {fmt.scale:g} instead of multiplying"
        mistakes.append((label, undone(replace(fmt, scale=1 / fmt.scale))))
    return mistakes


def _address_mistakes(
    sheet: Datasheet, tag: TagSpec, truth: TruthSeries, tolerance: float
) -> list[tuple[str, Explains]]:
    """Reads one or two registers off, predicted from the truth's register image."""
    fmt = _fmt(tag)
    if fmt is None or tag.modbus is None:
        return []
    address, table = tag.modbus.address, tag.modbus.table

    def shifted(delta: int) -> Explains:
        def explains(ts: int, sent: Value) -> bool:
            image = _register_image(sheet, truth, ts, table)
            wanted = [address + delta + i for i in range(fmt.count)]
            if any(a not in image for a in wanted):
                return False  # nothing mapped there: no evidence either way
            return _telling(sent, decode([image[a] for a in wanted], fmt), tolerance)

        return explains

    return [
        (
            f"wrong address: read {table} {address + delta} instead of {address}"
            + (" (1-based vs 0-based?)" if abs(delta) == 1 else ""),
            shifted(delta),
        )
        for delta in (1, -1, 2, -2)
    ]


def _other_mistakes(
    sheet: Datasheet, tag: TagSpec, truth: TruthSeries, tolerance: float
) -> list[tuple[str, Explains]]:
    """Another tag's values; the right tag's values, late (ts is not the sampling time)."""

    def truth_of(name: str, lag_ms: int) -> Explains:
        return lambda ts, sent: _telling(sent, truth.value_at(name, ts - lag_ms), tolerance)

    mistakes = [
        (f"wrong tag: the values are those of '{other.name}'", truth_of(other.name, 0))
        for other in sheet.tags
        if other.name != tag.name
    ]
    for lag_s in (1, 2, 5, 10):
        label = f"stale: the values lag the plant by about {lag_s} s (ts is not the sampling time)"
        mistakes.append((label, truth_of(tag.name, lag_s * 1000)))
    return mistakes


@dataclass(frozen=True)
class Diagnosis:
    """The mistake that explains what was sent, and every hypothesis that explains it."""

    label: str
    candidates: tuple[dict[str, Any], ...] = ()  # {"mistake", "explains": share}, best first


def diagnose(
    sheet: Datasheet,
    tag: TagSpec,
    samples: Sequence[Sample],
    truth: TruthSeries,
    tolerance: float,
    min_fraction: float,
    align_ms: int = 600,
) -> Diagnosis:
    """Name the mistake that explains the samples, or say what is known.

    Every hypothesis is scored by the share of samples it explains (with values that tell,
    see _telling); those reaching min_fraction are candidates. Hypotheses explaining the
    series equally well (within one sample) are a tie and named together, the forward
    predictions (address) first.
    """
    if not samples:
        return Diagnosis("never published")
    hypotheses = [
        *_address_mistakes(sheet, tag, truth, tolerance),
        *_decoding_mistakes(tag, truth, tolerance, align_ms),
        *_other_mistakes(sheet, tag, truth, tolerance),
    ]
    scored = [
        (label, sum(1 for ts, v in samples if explains(ts, v)) / len(samples))
        for label, explains in hypotheses
    ]
    accepted = sorted(
        ((label, share) for label, share in scored if share >= min_fraction),
        key=lambda item: -item[1],  # stable: equal shares keep the hypotheses' order
    )
    candidates = tuple({"mistake": label, "explains": round(share, 3)} for label, share in accepted)
    if accepted:
        best = accepted[0][1]
        tied = [label for label, share in accepted if best - share <= 1 / len(samples)]
        label = tied[0]
        if len(tied) > 1:
            label += " — or, explaining the values equally well: " + "; ".join(tied[1:])
        return Diagnosis(label, candidates)
    sent = {v for _, v in samples}
    span = truth.values_between(tag.name, samples[0][0], samples[-1][0])
    if len(sent) == 1 and len(set(span)) > 1:
        return Diagnosis("stale: the same value was sent while the plant's value changed")
    return Diagnosis("no known mistake explains the values; compare the chart")


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
    obs = ctx.observation
    if not obs.line:
        parts, per_tag = _device_values(ctx)
        where = f"iiot/{obs.tenant}/{obs.device}/telemetry"
        return ctx.outcome(
            parts or [("no tags to grade", 1.0, False)], _evidence(ctx, per_tag, where)
        )
    # a multi-plant lab: every device of the line against its own datasheet and truth
    parts, per_device, failed = [], {}, []
    for entry in obs.line:
        sub = replace(ctx, datasheet=entry.datasheet, observation=obs.for_device(entry.device))
        device_parts, per_device[entry.device] = _device_values(sub)
        device_parts = device_parts or [("no tags to grade", 1.0, False)]
        parts += device_parts
        wrong = [label for label, _, ok in device_parts if not ok]
        if wrong:  # one line per device: a silent device of twenty must not flood the report
            more = f"; {len(wrong) - 2} more" if len(wrong) > 2 else ""
            failed.append(
                f"{entry.device}: {len(wrong)} of {len(device_parts)} tags wrong "
                f"({'; '.join(wrong[:2])}{more})"
            )
    where = f"iiot/{obs.tenant}/<device>/telemetry for " + ", ".join(per_device)
    outcome = ctx.outcome(parts, _evidence(ctx, per_device, where))
    return replace(outcome, message="failed: " + " | ".join(failed)) if failed else outcome


def _evidence(ctx: CheckContext[ValuesParams], saw: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "expected": f"at least {ctx.params.min_fraction:.0%} of each tag's samples equal the "
        "simulator's value at the message ts (within the tag's tolerance)",
        "saw": saw,
        "where": where,
    }


def _device_values(
    ctx: CheckContext[ValuesParams],
) -> tuple[list[tuple[str, float, bool]], dict[str, Any]]:
    """values_match_truth's parts and per-tag evidence for one device."""
    obs, params = ctx.observation, ctx.params
    parts: list[tuple[str, float, bool]] = []
    per_tag: dict[str, Any] = {}
    for tag in _graded_tags(ctx):
        tolerance = params.tolerance.get(tag.name, tag.tolerance or 0.0)
        reads = gateway_reads(obs, tag.name, params.align_ms)
        samples = [(read[0], read[1]) for read in reads]
        matched = [_matches(read, obs.truth, tag.name, tolerance) for read in reads]
        fraction = sum(matched) / len(reads) if reads else 0.0
        ok = bool(samples) and fraction >= params.min_fraction
        entry: dict[str, Any] = {
            "samples": len(samples),
            "matching": round(fraction, 3),
            "tolerance": tolerance,
        }
        if samples:  # the first sample that does not match, or the middle one
            wrong = [i for i, good in enumerate(matched) if not good]
            ts, sent = samples[wrong[0] if wrong else len(samples) // 2]
            entry.update(expected=obs.truth.value_at(tag.name, ts), saw=sent, where_ts=ts)
        if not ok:
            found = diagnose(
                ctx.datasheet,
                tag,
                samples,
                obs.truth,
                tolerance,
                params.min_fraction,
                params.align_ms,
            )
            entry["diagnosis"] = found.label
            entry["diagnosis_candidates"] = list(found.candidates)
            entry["series"] = _series(samples, obs.truth, tag.name, params.chart_points)
        per_tag[tag.name] = entry
        label = f"{tag.name}: {fraction:.0%} of {len(samples)} samples match"
        if not ok:
            label += f" ({entry['diagnosis']})"
        parts.append((label, 1.0, ok))
    return parts, per_tag
