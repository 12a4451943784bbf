"""The time-series store Protocol every backend implements, and its records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

MetricValue = bool | int | float | str
Aggregation = Literal["mean", "min", "max", "last"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "min", "max", "last")


@dataclass(frozen=True)
class TelemetryRecord:
    """One accepted telemetry message (contract v1) of one device."""

    tenant: str
    device: str
    seq: int
    ts: int
    metrics: Mapping[str, MetricValue]
    replayed: bool = False


@dataclass(frozen=True)
class LatestValue:
    metric: str
    value: MetricValue
    ts: int
    seq: int


@dataclass(frozen=True)
class SeriesPoint:
    """A raw sample, or the aggregate of the interval starting at `ts`."""

    ts: int
    value: MetricValue


class TelemetryStore(Protocol):
    """Stores telemetry; a message (tenant, device, seq) is stored once however often sent."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def write(self, records: Sequence[TelemetryRecord]) -> int:
        """Store the records; return how many metric points were new."""
        ...

    async def latest(self, tenant: str, device: str) -> dict[str, LatestValue]: ...

    async def series(
        self,
        tenant: str,
        device: str,
        metric: str,
        start_ms: int,
        end_ms: int,
        interval_ms: int | None = None,
        aggregation: Aggregation = "mean",
        limit: int | None = None,
    ) -> list[SeriesPoint]:
        """Raw points in [start, end), or one aggregate per interval when interval_ms;
        the first `limit` of them when given."""
        ...

    async def count(self, tenant: str, device: str) -> int:
        """Number of stored metric points of the device."""
        ...


def aggregate(values: Sequence[tuple[int, MetricValue]], aggregation: Aggregation) -> MetricValue:
    """Aggregate (ts, value) pairs of one interval; booleans count as 0/1, text only `last`."""
    if aggregation == "last" or any(isinstance(v, str) for _, v in values):
        return max(values, key=lambda item: item[0])[1]
    numbers = [float(v) for _, v in values]
    if aggregation == "min":
        return min(numbers)
    if aggregation == "max":
        return max(numbers)
    return sum(numbers) / len(numbers)


def bucket(
    points: Sequence[tuple[int, MetricValue]], interval_ms: int, aggregation: Aggregation
) -> list[SeriesPoint]:
    """Group sorted raw points into intervals aligned to epoch and aggregate each."""
    groups: dict[int, list[tuple[int, MetricValue]]] = {}
    for ts, value in points:
        groups.setdefault(ts - ts % interval_ms, []).append((ts, value))
    return [SeriesPoint(start, aggregate(items, aggregation)) for start, items in groups.items()]
