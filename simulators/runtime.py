"""One plant inside a running simulation: the served snapshot, sensor faults, the write log."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from iiotlab.errors import IiotlabError
from simulators.base import (
    Plant,
    SnapshotListener,
    TagAccessError,
    TagDefinition,
    Value,
)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class WriteRecord:
    """One write a client attempted: who (source), what, when, and whether it took."""

    ts_ms: int
    protocol: str  # "modbus", "opcua" or "api"
    source: str  # e.g. "modbus:127.0.0.1:50312", "opcua:operator12@127.0.0.1:50400"
    device: str
    tag: str
    value: Value
    ok: bool
    error: str | None


@dataclass
class SensorFault:
    """A scenario fault on one served tag; the process itself runs on untouched."""

    kind: str  # sensor_stuck, drift, spike, noise_burst
    tag: str
    started_s: float
    until_s: float
    magnitude: float = 0.0
    stuck_value: Value | None = None

    def apply(self, value: Value, now_s: float, rng: random.Random) -> Value:
        if self.kind == "sensor_stuck":
            return value if self.stuck_value is None else self.stuck_value
        if isinstance(value, bool | str):
            return value
        if self.kind == "drift":
            shifted = value + self.magnitude * (now_s - self.started_s)
        elif self.kind == "spike":
            shifted = value + self.magnitude
        else:  # noise_burst
            shifted = value + rng.gauss(0.0, self.magnitude)
        return round(shifted) if isinstance(value, int) else shifted


def protocol_of(source: str) -> str:
    head = source.split(":", 1)[0]
    return head if head in ("modbus", "opcua") else "api"


class LivePlant:
    """Implements `PlantRuntime`: what Modbus and OPC UA both serve for one plant."""

    def __init__(
        self,
        plant: Plant,
        device: str,
        write_log: list[WriteRecord],
        plant_factory: Callable[[], Plant] | None = None,
        fault_seed: int = 0,
    ) -> None:
        self.plant = plant
        self.plant_kind = plant.kind
        self.device = device
        self.write_log = write_log
        self.faults: list[SensorFault] = []
        self.elapsed_s = 0.0
        self.available = True  # False while the PLC restarts
        self._factory = plant_factory
        self._fault_rng = random.Random(fault_seed)
        self._listeners: list[SnapshotListener] = []
        self._write_listeners: list[Callable[[WriteRecord], None]] = []
        self._snapshot: Mapping[str, Value] = dict(plant.values())
        self._constant_resets: list[tuple[float, str, float]] = []  # (until_s, name, old)

    @property
    def tags(self) -> tuple[TagDefinition, ...]:
        return self.plant.tags

    def snapshot(self) -> Mapping[str, Value]:
        return self._snapshot

    def add_listener(self, listener: SnapshotListener) -> None:
        self._listeners.append(listener)

    def add_write_listener(self, listener: Callable[[WriteRecord], None]) -> None:
        self._write_listeners.append(listener)

    def tick(self, dt: float, ts_ms: int) -> Mapping[str, Value]:
        """Advance the process one tick, refresh the served snapshot, tell listeners."""
        self.plant.step(dt)
        self.elapsed_s += dt
        self._reset_constants()
        self.faults = [f for f in self.faults if f.until_s > self.elapsed_s]
        self._refresh()
        for listener in self._listeners:
            listener(self._snapshot, ts_ms)
        return self._snapshot

    def _refresh(self) -> None:
        values = dict(self.plant.values())
        for fault in self.faults:
            if fault.tag in values:
                values[fault.tag] = fault.apply(values[fault.tag], self.elapsed_s, self._fault_rng)
        self._snapshot = values

    def _publish(self) -> None:
        """A command changed the process between ticks: every protocol serves it now."""
        self._refresh()
        ts = now_ms()
        for listener in self._listeners:
            listener(self._snapshot, ts)

    def add_fault(self, kind: str, tag: str, duration_s: float, magnitude: float) -> SensorFault:
        if tag not in self._snapshot:
            raise TagAccessError(f"{self.device} has no tag {tag!r}")
        fault = SensorFault(
            kind,
            tag,
            self.elapsed_s,
            self.elapsed_s + duration_s,
            magnitude,
            self._snapshot[tag] if kind == "sensor_stuck" else None,
        )
        self.faults.append(fault)
        self._publish()
        return fault

    def constant_names(self) -> list[str]:
        constants = getattr(self.plant, "constants", None)
        return sorted(constants) if isinstance(constants, dict) else []

    def change_constant(self, name: str, value: float, duration_s: float) -> None:
        """A process change for a while (a worn label printer rejects every pack)."""
        constants: dict[str, float] = getattr(self.plant, "constants")  # noqa: B009
        self._constant_resets.append((self.elapsed_s + duration_s, name, constants[name]))
        constants[name] = value

    def _reset_constants(self) -> None:
        due = [r for r in self._constant_resets if r[0] <= self.elapsed_s]
        if not due:
            return
        self._constant_resets = [r for r in self._constant_resets if r[0] > self.elapsed_s]
        constants: dict[str, float] = getattr(self.plant, "constants")  # noqa: B009
        for _, name, old in reversed(due):
            constants[name] = old

    def restart(self) -> None:
        """PLC restart: the program starts over from its initial state (no retained data)."""
        if self._factory is not None:
            self.plant = self._factory()
        self.faults.clear()
        self._constant_resets.clear()
        self._publish()

    def write(self, tag: str, value: Value, source: str) -> None:
        error: str | None = None
        try:
            if not self.available:
                raise TagAccessError(f"{self.device} is restarting")
            self.plant.write(tag, value)
        except IiotlabError as exc:
            error = str(exc)
            raise
        finally:
            self._log(tag, value, source, error)
        self._publish()

    def call(self, method: str, source: str) -> None:
        error: str | None = None
        try:
            self.plant.call(method)
        except IiotlabError as exc:
            error = str(exc)
            raise
        finally:
            self._log(f"{method}()", True, source, error)
        self._publish()

    def _log(self, tag: str, value: Value, source: str, error: str | None) -> None:
        record = WriteRecord(
            now_ms(), protocol_of(source), source, self.device, tag, value, error is None, error
        )
        self.write_log.append(record)
        for listener in self._write_listeners:
            listener(record)
