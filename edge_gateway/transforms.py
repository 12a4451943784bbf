"""Edge computing: per-tag transforms published as derived metrics.

Sliding windows (a value after every sample, over the last `window_s` seconds):
  moving_average  mean of the samples in the window
  rms             root mean square (vibration, AC quantities)
  rate_of_change  (newest - oldest) / seconds between them, units per second
Tumbling windows (one value when a window of `window_s` seconds closes):
  min, max, mean
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from edge_gateway.config import TransformConfig


class Transform(Protocol):
    name: str
    tag: str

    def add(self, ts_ms: int, value: float) -> float | None:
        """Take one sample; the derived value, or None when there is none yet."""


@dataclass
class SlidingWindow:
    """moving_average, rms or rate_of_change over the last `window_s` seconds."""

    name: str
    tag: str
    kind: str
    window_s: float
    _samples: deque[tuple[int, float]] = field(default_factory=deque)
    _sum: float = 0.0
    _sum_squares: float = 0.0

    def add(self, ts_ms: int, value: float) -> float | None:
        self._samples.append((ts_ms, value))
        self._sum += value
        self._sum_squares += value * value
        horizon = ts_ms - self.window_s * 1000
        while self._samples and self._samples[0][0] < horizon:
            _, old = self._samples.popleft()
            self._sum -= old
            self._sum_squares -= old * old
        count = len(self._samples)
        if self.kind == "moving_average":
            return self._sum / count
        if self.kind == "rms":
            return math.sqrt(max(self._sum_squares, 0.0) / count)
        first_ts, first = self._samples[0]
        if ts_ms == first_ts:
            return None
        return (value - first) / ((ts_ms - first_ts) / 1000)


@dataclass
class TumblingWindow:
    """min, max or mean of each consecutive window of `window_s` seconds."""

    name: str
    tag: str
    kind: str
    window_s: float
    _start_ms: int | None = None
    _values: list[float] = field(default_factory=list)

    def add(self, ts_ms: int, value: float) -> float | None:
        if self._start_ms is None:
            self._start_ms = ts_ms
        result = None
        if ts_ms - self._start_ms >= self.window_s * 1000 and self._values:
            result = self._aggregate()
            self._values.clear()
            self._start_ms = ts_ms
        self._values.append(value)
        return result

    def _aggregate(self) -> float:
        if self.kind == "min":
            return min(self._values)
        if self.kind == "max":
            return max(self._values)
        return sum(self._values) / len(self._values)


def build_transform(config: TransformConfig) -> Transform:
    if config.kind in ("min", "max", "mean"):
        return TumblingWindow(config.name, config.tag, config.kind, config.window_s)
    return SlidingWindow(config.name, config.tag, config.kind, config.window_s)


class TransformSet:
    """Every configured transform; feed it a cycle's values, get derived metrics."""

    def __init__(self, configs: list[TransformConfig]) -> None:
        self._by_tag: dict[str, list[Transform]] = {}
        for config in configs:
            self._by_tag.setdefault(config.tag, []).append(build_transform(config))

    def apply(self, ts_ms: int, values: dict[str, object]) -> dict[str, float]:
        derived: dict[str, float] = {}
        for tag, transforms in self._by_tag.items():
            value = values.get(tag)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            for transform in transforms:
                result = transform.add(ts_ms, float(value))
                if result is not None and math.isfinite(result):
                    derived[transform.name] = result
        return derived
