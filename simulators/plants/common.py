"""Shared machinery of the process models: tag checks, noise, the serial number."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from simulators.base import (
    Plant,
    TagAccessError,
    TagDefinition,
    TagValueError,
    Value,
)

SERIAL_TAG = TagDefinition(
    "serial_number", "", "Device serial number (ASCII, 16 characters max)", "string"
)


class ProcessPlant(Plant):
    """A plant whose sensors are sampled once per step, so `values()` is pure.

    Noise is drawn inside `step()` only: reading the values any number of times never moves
    the random stream, which keeps a run repeatable for a seed whatever the clients do.
    """

    def __init__(self, constants: Mapping[str, float], rng: random.Random) -> None:
        self.constants = dict(self.default_constants())
        self.constants.update(constants)
        self.rng = rng
        self.time_s = 0.0
        self.serial_number = f"{self.kind[:2].upper()}{rng.randrange(10**9, 10**10)}"
        self._by_name = {tag.name: tag for tag in self.tags}

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {}

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        """Process constants of one student's variant, drawn from rng."""
        return cls.default_constants()

    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma) if sigma > 0 else 0.0

    def write(self, tag: str, value: Value) -> None:
        definition = self._by_name.get(tag)
        if definition is None:
            raise TagAccessError(f"{self.kind} has no tag {tag!r}")
        if definition.access != "rw":
            raise TagAccessError(f"{self.kind} tag {tag!r} is read-only")
        self._apply(tag, self._checked(definition, value))

    def _checked(self, definition: TagDefinition, value: Value) -> Value:
        if definition.kind == "bool":
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise TagValueError(f"{definition.name} takes true/false or 0/1, got {value!r}")
        if isinstance(value, str | bool) or not math.isfinite(float(value)):
            raise TagValueError(f"{definition.name} takes a number, got {value!r}")
        low, high = definition.range
        if not low <= float(value) <= high:
            raise TagValueError(
                f"{definition.name}={value!r} is outside its range {low:g}..{high:g}"
            )
        return int(value) if definition.kind == "int" else float(value)

    def _apply(self, tag: str, value: Value) -> None:
        raise TagAccessError(f"{self.kind} tag {tag!r} cannot be written")


def first_order(current: float, target: float, time_constant: float, dt: float) -> float:
    """Move current toward target with a first-order lag."""
    if time_constant <= 0:
        return target
    return current + (target - current) * (1.0 - math.exp(-dt / time_constant))


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
