"""What every part of the simulator agrees on: plant models, tag definitions, runtime.

A `Plant` is a pure process model stepped on a fixed tick. A `PlantRuntime` owns one plant
inside a running simulation: it applies scenario faults, keeps the latest snapshot that
both protocol servers serve (one state), logs writes, and tells listeners after each tick.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from iiotlab.errors import IiotlabError

Value = float | int | bool | str
ValueKind = Literal["float", "int", "bool", "string", "counter"]


class TagAccessError(IiotlabError):
    """A write to a read-only tag, or to a tag the plant does not have."""


class TagValueError(IiotlabError):
    """A written value outside the tag's range or of the wrong kind."""


class InterlockError(IiotlabError):
    """Equipment refuses the command (e.g. pump start at high-high level)."""


@dataclass(frozen=True)
class TagDefinition:
    name: str
    unit: str
    description: str
    kind: ValueKind
    access: Literal["r", "rw"] = "r"
    range: tuple[float, float] = (0.0, 1.0)
    tolerance: float = 0.0  # absolute tolerance a grader allows (noise, tick alignment)


class Plant(ABC):
    """A process model. Deterministic given its constants and random generator."""

    kind: str  # "tank", "boiler", "packaging", "compressor", "energy"
    tags: tuple[TagDefinition, ...]
    methods: tuple[str, ...] = ("Start", "Stop", "ResetFault")

    @abstractmethod
    def step(self, dt: float) -> None:
        """Advance the process by dt seconds."""

    @abstractmethod
    def values(self) -> dict[str, Value]:
        """The value of every tag as the plant's sensors report it now."""

    def truth_values(self) -> dict[str, Value]:
        """Process state no sensor reports (no tag serves it), kept in the ground truth only:
        what a grader may know and a student must infer (the compressor's bearing wear)."""
        return {}

    @abstractmethod
    def write(self, tag: str, value: Value) -> None:
        """Apply a setpoint or command; raises TagAccessError, TagValueError, InterlockError."""

    @abstractmethod
    def call(self, method: str) -> None:
        """Run a method (Start, Stop, ResetFault)."""


PlantFactory = Callable[[Mapping[str, float], random.Random], Plant]

SnapshotListener = Callable[[Mapping[str, Value], int], None]
"""Called after every tick with the served values and the tick's epoch milliseconds."""


class PlantRuntime(Protocol):
    """One plant inside a running simulation, as protocol servers see it."""

    plant_kind: str
    device: str  # e.g. "tank-1"

    @property
    def tags(self) -> tuple[TagDefinition, ...]: ...

    def snapshot(self) -> Mapping[str, Value]:
        """The values the protocols serve right now (scenario faults applied)."""

    def write(self, tag: str, value: Value, source: str) -> None:
        """Write through to the plant; logged with source (client address or user)."""

    def call(self, method: str, source: str) -> None: ...

    def add_listener(self, listener: SnapshotListener) -> None: ...
