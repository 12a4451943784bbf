"""Report by exception: publish a value when it moved past its deadband, and everything
at least every `heartbeat_s` seconds.

A value of None means the tag could not be read: it is left out of `metrics` and marked
`"bad"` in `quality`. A change of quality is always reported.

A heartbeat re-sends the last values with a fresh `ts`, so it must not re-send a polled
value whose last successful read is older than the tag's `max_age` (a read hanging on a
dead PLC link until its timeout): such a tag is reported `"bad"` until it is read again.
Tags without a `max_age` (OPC UA data changes: silence means no change) never age.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from iiotlab.payloads import MetricValue

Quality = Literal["good", "bad", "uncertain"]


@dataclass(frozen=True)
class DeadbandRule:
    """`absolute` in engineering units, or `percent` of `span` (the tag's range width;
    without a range, of the last reported value's magnitude)."""

    absolute: float | None = None
    percent: float | None = None
    span: float | None = None

    def exceeded(self, old: MetricValue, new: MetricValue) -> bool:
        if isinstance(old, bool | str) or isinstance(new, bool | str):
            return old != new
        delta = abs(float(new) - float(old))
        if self.absolute is not None:
            return delta > self.absolute
        if self.percent is not None:
            base = self.span if self.span else abs(float(old))
            return delta > self.percent / 100 * base
        return new != old


NO_DEADBAND = DeadbandRule()


@dataclass(frozen=True)
class Report:
    """What one telemetry message carries."""

    ts_ms: int
    metrics: dict[str, MetricValue]
    quality: dict[str, Quality]
    heartbeat: bool = False


class ReportByException:
    def __init__(
        self,
        deadbands: Mapping[str, DeadbandRule],
        heartbeat_s: float,
        max_age_s: Mapping[str, float] | None = None,
    ) -> None:
        self._deadbands = dict(deadbands)
        self._max_age_ms = {name: age * 1000 for name, age in (max_age_s or {}).items()}
        self._sampled_ms: dict[str, int] = {}
        self._heartbeat_ms = heartbeat_s * 1000
        self._reported: dict[str, MetricValue] = {}
        self._quality: dict[str, Quality] = {}
        self._current: dict[str, MetricValue | None] = {}
        self._last_full_ms: int | None = None

    def update(self, values: Mapping[str, MetricValue | None], ts_ms: int) -> Report | None:
        """One cycle's samples; the report to publish, or None when nothing changed."""
        metrics: dict[str, MetricValue] = {}
        quality: dict[str, Quality] = {}
        # Locals and one pass: this runs for every tag of every poll (2,000 tags at
        # 100 cycles/s in the bench), so the per-value work is kept to a few dict calls.
        current, reported, qualities = self._current, self._reported, self._quality
        sampled, deadbands = self._sampled_ms, self._deadbands
        current.update(values)
        for name, value in values.items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                current[name] = None
                if qualities.get(name) != "bad":
                    quality[name] = "bad"
                continue
            sampled[name] = ts_ms
            old = reported.get(name)
            rule = deadbands.get(name)
            if (
                old is None
                or qualities.get(name) != "good"
                # without a rule, DeadbandRule.exceeded is `old != new` on every path
                or (old != value if rule is None else rule.exceeded(old, value))
            ):
                metrics[name] = value
                quality[name] = "good"
        reported.update(metrics)
        qualities.update(quality)
        if self._heartbeat_due(ts_ms):
            return self.full_report(ts_ms)
        if not metrics and not quality:
            return None
        return Report(ts_ms, metrics, quality)

    def heartbeat(self, now_ms: int) -> Report | None:
        """The full report when the heartbeat is due and nothing else sent one."""
        if not self._current or not self._heartbeat_due(now_ms):
            return None
        return self.full_report(now_ms)

    def full_report(self, ts_ms: int) -> Report:
        metrics: dict[str, MetricValue] = {}
        quality: dict[str, Quality] = {}
        for name, value in self._current.items():
            if value is None or self._too_old(name, ts_ms):
                quality[name] = self._quality[name] = "bad"
            else:
                metrics[name] = self._reported[name] = value
                quality[name] = self._quality[name] = "good"
        self._last_full_ms = ts_ms
        return Report(ts_ms, metrics, quality, heartbeat=True)

    def _too_old(self, name: str, now_ms: int) -> bool:
        limit = self._max_age_ms.get(name)
        sampled = self._sampled_ms.get(name)
        return limit is not None and sampled is not None and now_ms - sampled > limit

    def _heartbeat_due(self, now_ms: int) -> bool:
        return self._last_full_ms is None or now_ms - self._last_full_ms >= self._heartbeat_ms
