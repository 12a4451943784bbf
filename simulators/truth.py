"""Ground truth: the served value of every tag at every tick, and every event.

Kept in memory (bounded per device) for in-process graders and, when a path is given,
appended to a JSON-lines file: `{"type": "sample", "ts": ms, "device": d, "values": {...}}`
and `{"type": "event", "ts": ms, "kind": k, "device": d, "detail": {...}}`.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from simulators.base import Value

DEFAULT_MAX_SAMPLES = 36_000  # one hour at 10 Hz, per device


@dataclass(frozen=True)
class TruthEvent:
    ts_ms: int
    kind: str
    device: str | None
    detail: dict[str, Any] = field(default_factory=dict)


class GroundTruth:
    def __init__(self, path: Path | None = None, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        self.path = path
        self._max = max_samples
        self._samples: dict[str, deque[tuple[int, Mapping[str, Value]]]] = {}
        self._events: list[TruthEvent] = []
        self._file: IO[str] | None = None

    def open(self) -> None:
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def record_sample(self, device: str, ts_ms: int, values: Mapping[str, Value]) -> None:
        samples = self._samples.setdefault(device, deque(maxlen=self._max))
        samples.append((ts_ms, values))
        if self._file is not None:
            line = {"type": "sample", "ts": ts_ms, "device": device, "values": dict(values)}
            self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def record_event(
        self, ts_ms: int, kind: str, device: str | None, detail: Mapping[str, Any]
    ) -> TruthEvent:
        event = TruthEvent(ts_ms, kind, device, dict(detail))
        self._events.append(event)
        if self._file is not None:
            line = {
                "type": "event",
                "ts": ts_ms,
                "kind": kind,
                "device": device,
                "detail": event.detail,
            }
            self._file.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
            self._file.flush()
        return event

    def devices(self) -> list[str]:
        return list(self._samples)

    def samples(self, device: str) -> list[tuple[int, Mapping[str, Value]]]:
        return list(self._samples.get(device, ()))

    def value_at(self, device: str, tag: str, ts_ms: int) -> Value | None:
        """The served value at ts_ms: the last tick at or before it (None before the first)."""
        samples = self._samples.get(device)
        if not samples:
            return None
        index = bisect.bisect_right(samples, ts_ms, key=lambda s: s[0]) - 1
        if index < 0:
            return None
        return samples[index][1].get(tag)

    def events(self, kind: str | None = None) -> list[TruthEvent]:
        return [e for e in self._events if kind is None or e.kind == kind]


def read_truth_file(path: Path) -> tuple[list[dict[str, Any]], list[TruthEvent]]:
    """Samples and events from a ground-truth JSON-lines file."""
    samples: list[dict[str, Any]] = []
    events: list[TruthEvent] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["type"] == "sample":
                samples.append(row)
            else:
                events.append(TruthEvent(row["ts"], row["kind"], row["device"], row["detail"]))
    return samples, events
