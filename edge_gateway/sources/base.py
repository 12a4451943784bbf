"""What every source offers the gateway: start/stop, cycles of values, and writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from iiotlab.errors import IiotlabError
from iiotlab.payloads import MetricValue


class WriteError(IiotlabError):
    """A write to a device failed; the message says why (sent back in the command ack)."""


@dataclass(frozen=True)
class SourceCycle:
    """Values sampled together at `ts_ms`; None marks a tag that could not be read."""

    source: str
    ts_ms: int
    values: dict[str, MetricValue | None]


CycleSink = Callable[[SourceCycle], None]


class Source(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def write(self, tag: str, value: MetricValue) -> None:
        """Write one engineering value; raises WriteError saying why not."""


class Backoff:
    """Exponential reconnect delay: initial, doubling, capped; reset() after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def now_ms() -> int:
    return int(time.time() * 1000)
