"""How a student's variant lays its tags out in Modbus tables: types, scales, addresses."""

from __future__ import annotations

import random
from dataclasses import dataclass

from iiotlab.registers import RegisterFormat
from simulators.base import TagDefinition

STRING_REGISTERS = 8  # 16 ASCII characters

# Some tags always take one type, so every type appears across the five plants.
FIXED_TYPES: dict[tuple[str, str], str] = {
    ("boiler", "temperature"): "int16",
    ("packaging", "state"): "uint16",
    ("packaging", "status_word"): "bits16",
    ("packaging", "reject_count"): "int32",
    ("energy", "active_power"): "int32",
    ("energy", "energy"): "uint32",
    ("compressor", "discharge_pressure"): "float32",
    ("compressor", "run_hours"): "float64",
}
FLOAT_TYPES = ("float32", "float32", "float64", "int16", "uint16", "int32", "uint32")
INT_TYPES = ("uint16", "uint16", "int16")
COUNTER_TYPES = ("uint32", "uint32", "int32")
_LIMITS = {
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "bits16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
BASES = (0, 0, 1, 10, 100, 200, 256, 400, 500, 1000, 1024, 2000, 3000, 4000, 4096, 5000)
ENERGY_SCALES = (0.001, 0.01)
POWER_FACTOR_SCALES = (0.001, 0.0001)


@dataclass(frozen=True)
class Placement:
    """Where and how one tag sits on Modbus."""

    table: str
    address: int
    type: str
    word_order: str = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int | None = None
    bit: int | None = None

    @property
    def count(self) -> int:
        if self.type in ("bool",) or self.bit is not None:
            return 1
        return self.format().count

    def format(self) -> RegisterFormat:
        return RegisterFormat(self.type, self.word_order, self.scale, self.offset, self.length or 1)


@dataclass(frozen=True)
class Encoding:
    type: str
    scale: float = 1.0
    offset: float = 0.0


def _fits(low: float, high: float, type_: str, scale: float, offset: float) -> bool:
    lo, hi = _LIMITS[type_]
    return lo <= (low - offset) / scale and (high - offset) / scale <= hi


def choose_encoding(plant: str, tag: TagDefinition, rng: random.Random) -> Encoding:
    """A register type, scale and offset for a numeric tag that holds its whole range."""
    fixed = FIXED_TYPES.get((plant, tag.name))
    if tag.kind == "string":
        return Encoding("string")
    if plant == "energy" and tag.name == "energy":
        return Encoding("uint32", rng.choice(ENERGY_SCALES))
    if plant == "energy" and tag.name == "power_factor":
        return Encoding("uint16", rng.choice(POWER_FACTOR_SCALES))  # a scaled integer, always
    if tag.kind in ("int", "counter"):
        options = INT_TYPES if tag.kind == "int" else COUNTER_TYPES
        type_ = fixed or rng.choice(options)
        if not _fits(*tag.range, type_, 1.0, 0.0):
            type_ = "uint32"
        return Encoding(type_)
    type_ = fixed or rng.choice(FLOAT_TYPES)
    if type_.startswith("float"):
        return Encoding(type_)
    low, high = tag.range
    offset = 0.0
    if low < 0 and type_.startswith("uint"):
        offset = low  # a non-negative raw value with an offset, as many meters do
    for scale in [*rng.sample((0.1, 0.01, 0.001), 3), 1.0, 10.0]:
        if _fits(low, high, type_, scale, offset):
            return Encoding(type_, scale, offset)
    return Encoding("float32")


class TableAllocator:
    """Hands out contiguous addresses per table from a seeded base."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next: dict[str, int] = {}

    def take(self, table: str, count: int) -> int:
        if table not in self._next:
            self._next[table] = self._rng.choice(BASES) + self._rng.randrange(0, 8)
        address = self._next[table]
        self._next[table] = address + count
        return address

    def skip(self, table: str, count: int) -> None:
        """Leave an unmapped gap (reads there answer exception 02)."""
        if table in self._next:
            self._next[table] += count
