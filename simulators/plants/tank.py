"""Water tank: pump inflow, valve outflow through sqrt(level), level switches, interlock."""

from __future__ import annotations

import math
import random

from simulators.base import InterlockError, TagAccessError, TagDefinition, Value
from simulators.plants.common import SERIAL_TAG, ProcessPlant, clamp, first_order

HEIGHT_M = 5.0


class TankPlant(ProcessPlant):
    kind = "tank"
    tags = (
        TagDefinition("level", "m", "Tank level (LT-101)", "float", "r", (0.0, HEIGHT_M), 0.03),
        TagDefinition("pump_on", "", "Pump run command", "bool", "rw", (0, 1)),
        TagDefinition("pump_running", "", "Pump running feedback", "bool", "r", (0, 1)),
        TagDefinition(
            "pump_speed_sp", "%", "Pump speed setpoint", "float", "rw", (0.0, 100.0), 0.01
        ),
        TagDefinition(
            "valve_opening", "%", "Outlet valve opening", "float", "rw", (0.0, 100.0), 0.01
        ),
        TagDefinition("inflow", "m3/h", "Inflow (FT-101)", "float", "r", (0.0, 250.0), 2.0),
        TagDefinition("outflow", "m3/h", "Outflow (FT-102)", "float", "r", (0.0, 250.0), 2.0),
        TagDefinition("level_low", "", "Low level switch (LSL)", "bool", "r", (0, 1)),
        TagDefinition("level_high", "", "High level switch (LSH)", "bool", "r", (0, 1)),
        TagDefinition(
            "level_high_high", "", "High-high level switch (LSHH), trips the pump", "bool"
        ),
        TagDefinition("overflow_alarm", "", "Overflow alarm (latched)", "bool", "r", (0, 1)),
        SERIAL_TAG,
    )

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {
            "area_m2": 2.0,
            "pump_max_m3h": 180.0,
            "valve_cv": 60.0,  # m3/h at 100 % opening and 1 m of head
            "initial_level_m": 1.5,
            "low_m": 0.5,
            "high_m": 4.0,
            "high_high_m": 4.6,
            "level_noise_m": 0.005,
        }

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        constants = cls.default_constants()
        constants["area_m2"] = round(rng.uniform(1.5, 3.0), 2)
        constants["pump_max_m3h"] = round(rng.uniform(150.0, 220.0), 1)
        constants["valve_cv"] = round(rng.uniform(40.0, 80.0), 1)
        constants["initial_level_m"] = round(rng.uniform(1.0, 2.5), 2)
        constants["high_m"] = round(rng.uniform(3.8, 4.2), 2)
        constants["high_high_m"] = round(constants["high_m"] + rng.uniform(0.4, 0.6), 2)
        return constants

    def __init__(self, constants: dict[str, float], rng: random.Random) -> None:
        super().__init__(constants, rng)
        self.level = self.constants["initial_level_m"]
        self.pump_on = False
        self.pump_speed_sp = 50.0
        self.valve_opening = 30.0
        self.pump_speed = 0.0
        self.overflow_latched = False
        self.inflow = 0.0
        self.outflow = 0.0
        self.measured_level = self.level

    @property
    def high_high(self) -> bool:
        return self.level >= self.constants["high_high_m"]

    def step(self, dt: float) -> None:
        c = self.constants
        if self.high_high and self.pump_on:
            self.pump_on = False  # interlock: LSHH trips the pump
        target = self.pump_speed_sp if self.pump_on else 0.0
        self.pump_speed = first_order(self.pump_speed, target, 1.0, dt)
        self.inflow = c["pump_max_m3h"] * self.pump_speed / 100.0
        self.outflow = c["valve_cv"] * self.valve_opening / 100.0 * math.sqrt(self.level)
        self.level += (self.inflow - self.outflow) / 3600.0 / c["area_m2"] * dt
        self.level = clamp(self.level, 0.0, HEIGHT_M)
        if self.level >= HEIGHT_M - 0.01:
            self.overflow_latched = True
        self.measured_level = clamp(self.level + self.noise(c["level_noise_m"]), 0.0, HEIGHT_M)
        self.time_s += dt

    def values(self) -> dict[str, Value]:
        c = self.constants
        return {
            "level": round(self.measured_level, 4),
            "pump_on": self.pump_on,
            "pump_running": self.pump_speed > 1.0,
            "pump_speed_sp": self.pump_speed_sp,
            "valve_opening": self.valve_opening,
            "inflow": round(self.inflow, 3),
            "outflow": round(self.outflow, 3),
            "level_low": self.level <= c["low_m"],
            "level_high": self.level >= c["high_m"],
            "level_high_high": self.high_high,
            "overflow_alarm": self.overflow_latched,
            "serial_number": self.serial_number,
        }

    def _apply(self, tag: str, value: Value) -> None:
        if tag == "pump_on":
            if value and self.high_high:
                raise InterlockError("pump start refused: level is at high-high (LSHH)")
            self.pump_on = bool(value)
        elif tag == "pump_speed_sp":
            self.pump_speed_sp = float(value)
        elif tag == "valve_opening":
            self.valve_opening = float(value)

    def call(self, method: str) -> None:
        if method == "Start":
            self._apply("pump_on", True)
        elif method == "Stop":
            self.pump_on = False
        elif method == "ResetFault":
            if self.level < HEIGHT_M - 0.01:
                self.overflow_latched = False
        else:
            raise TagAccessError(f"tank has no method {method!r}; use Start, Stop or ResetFault")
