"""Energy meter: voltage, current, power factor, active power, energy counter with rollover."""

from __future__ import annotations

import math
import random

from simulators.base import TagAccessError, TagDefinition, Value
from simulators.plants.common import SERIAL_TAG, ProcessPlant, clamp


class EnergyPlant(ProcessPlant):
    kind = "energy"
    tags = (
        TagDefinition(
            "breaker_closed", "", "Feeder breaker closed (command)", "bool", "rw", (0, 1)
        ),
        TagDefinition("overcurrent_trip", "", "Overcurrent trip (latched)", "bool", "r", (0, 1)),
        TagDefinition("voltage", "V", "Phase voltage L1-N", "float", "r", (0.0, 300.0), 2.0),
        TagDefinition("current", "A", "Phase current L1", "float", "r", (0.0, 400.0), 2.0),
        TagDefinition("power_factor", "", "Power factor", "float", "r", (0.0, 1.0), 0.02),
        TagDefinition(
            "active_power", "kW", "Active power, three phase", "float", "r", (-300.0, 300.0), 2.0
        ),
        TagDefinition("frequency", "Hz", "Grid frequency", "float", "r", (45.0, 55.0), 0.03),
        TagDefinition(
            "energy",
            "kWh",
            "Imported active energy (rolls over, see notes)",
            "counter",
            "r",
            (0.0, 4294967.295),
            0.05,
        ),
        SERIAL_TAG,
    )

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {
            "nominal_v": 230.0,
            "base_load_kw": 60.0,
            "swing_kw": 25.0,
            "period_s": 120.0,
            "power_factor": 0.88,
            "trip_a": 380.0,
            "energy_wrap_kwh": 4294967.296,  # 2**32 raw counts of 1 Wh
            "initial_energy_kwh": 4294967.296 - 12.0,
            # > 0: start the counter this many seconds of the plant's load before its
            # rollover (overrides initial_energy_kwh), so short runs see it roll over
            "wrap_after_s": 0.0,
        }

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        constants = cls.default_constants()
        constants["nominal_v"] = rng.choice((220.0, 230.0, 240.0))
        constants["base_load_kw"] = round(rng.uniform(30.0, 90.0), 1)
        constants["swing_kw"] = round(rng.uniform(10.0, 30.0), 1)
        constants["period_s"] = round(rng.uniform(60.0, 240.0))
        constants["power_factor"] = round(rng.uniform(0.8, 0.95), 3)
        return constants

    def __init__(self, constants: dict[str, float], rng: random.Random) -> None:
        super().__init__(constants, rng)
        c = self.constants
        self.breaker_closed = True
        self.tripped = False
        self.energy_kwh = c["initial_energy_kwh"] % c["energy_wrap_kwh"]
        self.voltage = c["nominal_v"]
        self.current = 0.0
        self.pf = c["power_factor"]
        self.power_kw = 0.0
        self.frequency = 50.0
        self.phase = rng.uniform(0.0, 2 * math.pi)
        if c["wrap_after_s"] > 0:
            used = self.load_energy_kwh(c["wrap_after_s"])
            self.energy_kwh = (c["energy_wrap_kwh"] - used) % c["energy_wrap_kwh"]

    def load_energy_kwh(self, seconds: float) -> float:
        """kWh the noiseless load draws over the first `seconds` (breaker closed)."""
        c, steps, total = self.constants, 200, 0.0
        for index in range(steps):
            t = (index + 0.5) * seconds / steps
            angle = 2 * math.pi * t / c["period_s"] + self.phase
            total += max(0.0, c["base_load_kw"] + c["swing_kw"] * math.sin(angle))
        return total * seconds / steps / 3600.0

    def step(self, dt: float) -> None:
        c = self.constants
        self.time_s += dt
        closed = self.breaker_closed and not self.tripped
        angle = 2 * math.pi * self.time_s / c["period_s"] + self.phase
        load = c["base_load_kw"] + c["swing_kw"] * math.sin(angle) + self.noise(0.8)
        self.power_kw = max(0.0, load) if closed else 0.0
        self.voltage = c["nominal_v"] * (1 - 0.02 * self.power_kw / 100.0) + self.noise(0.4)
        self.pf = clamp(c["power_factor"] + self.noise(0.005), 0.5, 1.0) if closed else 1.0
        self.current = self.power_kw * 1000.0 / (3 * self.voltage * self.pf)
        self.frequency = 50.0 + self.noise(0.01)
        if self.current >= c["trip_a"]:
            self.tripped = True
        self.energy_kwh = (self.energy_kwh + self.power_kw * dt / 3600.0) % c["energy_wrap_kwh"]

    def values(self) -> dict[str, Value]:
        return {
            "breaker_closed": self.breaker_closed and not self.tripped,
            "overcurrent_trip": self.tripped,
            "voltage": round(self.voltage, 3),
            "current": round(self.current, 3),
            "power_factor": round(self.pf, 4),
            "active_power": round(self.power_kw, 3),
            "frequency": round(self.frequency, 4),
            "energy": round(self.energy_kwh, 4),
            "serial_number": self.serial_number,
        }

    def _apply(self, tag: str, value: Value) -> None:
        if tag == "breaker_closed":
            self.breaker_closed = bool(value)

    def call(self, method: str) -> None:
        if method == "Start":
            self.breaker_closed = True
        elif method == "Stop":
            self.breaker_closed = False
        elif method == "ResetFault":
            self.tripped = False
        else:
            raise TagAccessError(f"energy has no method {method!r}; use Start, Stop or ResetFault")
