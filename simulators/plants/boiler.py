"""Boiler: heater power -> water temperature with heat loss, steam pressure, relief valve."""

from __future__ import annotations

import math
import random

from simulators.base import TagAccessError, TagDefinition, Value
from simulators.plants.common import SERIAL_TAG, ProcessPlant, clamp

BURNER_OFF, BURNER_PURGE, BURNER_FIRING, BURNER_LOCKOUT = 0, 1, 2, 3
PURGE_S = 3.0


def saturation_pressure_bar(temperature_c: float) -> float:
    """Absolute steam pressure over water (Tetens), never below atmospheric."""
    kpa = 0.61078 * math.exp(17.27 * temperature_c / (temperature_c + 237.3))
    return max(1.013, kpa / 100.0)


class BoilerPlant(ProcessPlant):
    kind = "boiler"
    tags = (
        TagDefinition("burner_on", "", "Burner enable command", "bool", "rw", (0, 1)),
        TagDefinition(
            "heater_power_sp", "%", "Firing rate setpoint", "float", "rw", (0.0, 100.0), 0.01
        ),
        TagDefinition(
            "burner_state", "", "0 off, 1 purge, 2 firing, 3 lockout", "int", "r", (0, 3)
        ),
        TagDefinition(
            "temperature", "degC", "Water temperature (TT-201)", "float", "r", (-20.0, 250.0), 0.5
        ),
        TagDefinition(
            "pressure", "bar", "Steam pressure, absolute (PT-201)", "float", "r", (0.0, 16.0), 0.05
        ),
        TagDefinition("relief_valve_open", "", "Safety relief valve open", "bool", "r", (0, 1)),
        TagDefinition(
            "relief_count",
            "",
            "Relief valve openings since start",
            "counter",
            "r",
            (0, 4294967295),
            1,
        ),
        TagDefinition("heater_power", "kW", "Actual firing power", "float", "r", (0.0, 500.0), 5.0),
        SERIAL_TAG,
    )

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {
            "max_power_kw": 300.0,
            "heat_capacity_kj_per_k": 400.0,
            "loss_kw_per_k": 1.0,
            "ambient_c": 20.0,
            "relief_bar": 9.0,
            "relief_hysteresis_bar": 0.8,
            "relief_kw": 600.0,
            "trip_c": 200.0,
            "temperature_noise_c": 0.1,
        }

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        constants = cls.default_constants()
        constants["max_power_kw"] = round(rng.uniform(250.0, 400.0), 1)
        constants["heat_capacity_kj_per_k"] = round(rng.uniform(250.0, 500.0))
        constants["loss_kw_per_k"] = round(rng.uniform(0.6, 1.4), 2)
        constants["ambient_c"] = round(rng.uniform(12.0, 28.0), 1)
        constants["relief_bar"] = round(rng.uniform(8.0, 10.0), 1)
        return constants

    def __init__(self, constants: dict[str, float], rng: random.Random) -> None:
        super().__init__(constants, rng)
        self.temperature = self.constants["ambient_c"]
        self.burner_on = False
        self.heater_power_sp = 40.0
        self.state = BURNER_OFF
        self.purge_left = 0.0
        self.relief_open = False
        self.relief_count = 0
        self.power_kw = 0.0
        self.measured_temperature = self.temperature

    @property
    def pressure(self) -> float:
        return saturation_pressure_bar(self.temperature)

    def _advance_burner(self, dt: float) -> None:
        if self.state == BURNER_LOCKOUT:
            return
        if not self.burner_on:
            self.state = BURNER_OFF
        elif self.state == BURNER_OFF:
            self.state, self.purge_left = BURNER_PURGE, PURGE_S
        elif self.state == BURNER_PURGE:
            self.purge_left -= dt
            if self.purge_left <= 0:
                self.state = BURNER_FIRING
        if self.temperature >= self.constants["trip_c"]:
            self.state, self.burner_on = BURNER_LOCKOUT, False

    def _advance_relief(self) -> None:
        c = self.constants
        if not self.relief_open and self.pressure >= c["relief_bar"]:
            self.relief_open = True
            self.relief_count += 1
        elif self.relief_open and self.pressure <= c["relief_bar"] - c["relief_hysteresis_bar"]:
            self.relief_open = False

    def step(self, dt: float) -> None:
        c = self.constants
        self._advance_burner(dt)
        firing = self.state == BURNER_FIRING
        self.power_kw = c["max_power_kw"] * self.heater_power_sp / 100.0 if firing else 0.0
        loss = c["loss_kw_per_k"] * (self.temperature - c["ambient_c"])
        relief = c["relief_kw"] if self.relief_open else 0.0
        self.temperature += (self.power_kw - loss - relief) / c["heat_capacity_kj_per_k"] * dt
        self.temperature = clamp(self.temperature, -20.0, 250.0)
        self._advance_relief()
        self.measured_temperature = self.temperature + self.noise(c["temperature_noise_c"])
        self.time_s += dt

    def values(self) -> dict[str, Value]:
        return {
            "burner_on": self.burner_on,
            "heater_power_sp": self.heater_power_sp,
            "burner_state": self.state,
            "temperature": round(self.measured_temperature, 3),
            "pressure": round(self.pressure, 4),
            "relief_valve_open": self.relief_open,
            "relief_count": self.relief_count,
            "heater_power": round(self.power_kw, 2),
            "serial_number": self.serial_number,
        }

    def _apply(self, tag: str, value: Value) -> None:
        if tag == "burner_on":
            self.burner_on = bool(value)
        elif tag == "heater_power_sp":
            self.heater_power_sp = float(value)

    def call(self, method: str) -> None:
        if method == "Start":
            self.burner_on = True
        elif method == "Stop":
            self.burner_on = False
        elif method == "ResetFault":
            if self.state == BURNER_LOCKOUT and self.temperature < self.constants["trip_c"] - 10:
                self.state = BURNER_OFF
        else:
            raise TagAccessError(f"boiler has no method {method!r}; use Start, Stop or ResetFault")
