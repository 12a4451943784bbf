"""Air compressor: load/unload control, motor current, bearing wear that grows with running."""

from __future__ import annotations

import random

from simulators.base import TagAccessError, TagDefinition, Value
from simulators.plants.common import SERIAL_TAG, ProcessPlant, clamp, first_order


class CompressorPlant(ProcessPlant):
    kind = "compressor"
    tags = (
        TagDefinition("motor_on", "", "Motor run command", "bool", "rw", (0, 1)),
        TagDefinition(
            "pressure_sp", "bar", "Unload pressure setpoint", "float", "rw", (4.0, 10.0), 0.01
        ),
        TagDefinition("loaded", "", "Compressor loaded (delivering air)", "bool", "r", (0, 1)),
        TagDefinition(
            "tripped", "", "Protection trip (vibration or bearing temperature)", "bool", "r", (0, 1)
        ),
        TagDefinition("motor_current", "A", "Motor current", "float", "r", (0.0, 200.0), 2.0),
        TagDefinition(
            "discharge_pressure",
            "bar",
            "Discharge pressure (gauge)",
            "float",
            "r",
            (0.0, 12.0),
            0.08,
        ),
        TagDefinition(
            "bearing_temperature",
            "degC",
            "Drive-end bearing temperature",
            "float",
            "r",
            (-20.0, 150.0),
            0.5,
        ),
        TagDefinition(
            "vibration_rms",
            "mm/s",
            "Vibration velocity RMS (ISO 10816)",
            "float",
            "r",
            (0.0, 50.0),
            0.3,
        ),
        TagDefinition("run_hours", "h", "Running hours", "float", "r", (0.0, 1.0e6), 0.001),
        TagDefinition(
            "motor_starts",
            "",
            "Motor starts since commissioning",
            "counter",
            "r",
            (0, 2147483647),
            0,
        ),
        SERIAL_TAG,
    )

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {
            "rated_current_a": 90.0,
            "idle_current_fraction": 0.35,
            "band_bar": 0.7,
            "receiver_bar_per_s": 0.25,  # pressure rise when loaded, no demand
            "demand_bar_per_s": 0.12,  # pressure fall from plant air demand
            "ambient_c": 22.0,
            "wear_per_hour_running": 20.0,  # % per running hour (accelerated for labs)
            "initial_wear": 5.0,
            "vibration_base": 1.2,
            "vibration_trip": 11.0,
            "bearing_trip_c": 95.0,
            "initial_run_hours": 12000.0,
            "initial_starts": 800.0,
        }

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        constants = cls.default_constants()
        constants["rated_current_a"] = round(rng.uniform(60.0, 140.0), 1)
        constants["demand_bar_per_s"] = round(rng.uniform(0.08, 0.16), 3)
        constants["wear_per_hour_running"] = round(rng.uniform(10.0, 40.0), 1)
        constants["initial_wear"] = round(rng.uniform(0.0, 20.0), 1)
        constants["initial_run_hours"] = round(rng.uniform(1000.0, 40000.0), 1)
        constants["initial_starts"] = float(rng.randrange(100, 5000))
        return constants

    def __init__(self, constants: dict[str, float], rng: random.Random) -> None:
        super().__init__(constants, rng)
        c = self.constants
        self.motor_on = False
        self.pressure_sp = 7.5
        self.loaded = False
        self.tripped = False
        self.pressure = 0.0
        self.speed = 0.0  # 0..1 of rated
        self.wear = c["initial_wear"]
        self.bearing_c = c["ambient_c"]
        self.run_hours = c["initial_run_hours"]
        self.starts = int(c["initial_starts"])
        self.current = 0.0
        self.vibration = 0.0

    def _control(self) -> None:
        if self.pressure >= self.pressure_sp:
            self.loaded = False
        elif self.pressure <= self.pressure_sp - self.constants["band_bar"]:
            self.loaded = True
        if not self.motor_on:
            self.loaded = False

    def _protect(self) -> None:
        c = self.constants
        if self.vibration >= c["vibration_trip"] or self.bearing_c >= c["bearing_trip_c"]:
            self.tripped, self.motor_on = True, False

    def step(self, dt: float) -> None:
        c = self.constants
        self._control()
        self.speed = first_order(self.speed, 1.0 if self.motor_on else 0.0, 2.0, dt)
        load = 1.0 if self.loaded else c["idle_current_fraction"]
        rise = c["receiver_bar_per_s"] if self.loaded else 0.0
        self.pressure = clamp(self.pressure + (rise - c["demand_bar_per_s"]) * dt, 0.0, 12.0)
        if self.speed > 0.05:
            self.run_hours += dt / 3600.0
            self.wear += c["wear_per_hour_running"] * load * dt / 3600.0
        heat = 35.0 * self.speed * load + 0.4 * self.wear
        self.bearing_c = first_order(self.bearing_c, c["ambient_c"] + heat, 60.0, dt)
        base_vibration = c["vibration_base"] + 0.0015 * self.wear**2
        self.vibration = self.speed * base_vibration * (1 + self.noise(0.03))
        self.current = self.speed * c["rated_current_a"] * load * (1 + self.noise(0.01))
        self._protect()
        self.time_s += dt

    def values(self) -> dict[str, Value]:
        return {
            "motor_on": self.motor_on,
            "pressure_sp": self.pressure_sp,
            "loaded": self.loaded,
            "tripped": self.tripped,
            "motor_current": round(max(0.0, self.current), 3),
            "discharge_pressure": round(self.pressure, 4),
            "bearing_temperature": round(self.bearing_c, 3),
            "vibration_rms": round(max(0.0, self.vibration), 4),
            "run_hours": round(self.run_hours, 5),
            "motor_starts": self.starts,
            "serial_number": self.serial_number,
        }

    def truth_values(self) -> dict[str, Value]:
        return {"bearing_wear": round(self.wear, 4)}  # %, behind vibration and temperature

    def _apply(self, tag: str, value: Value) -> None:
        if tag == "motor_on":
            self._command(bool(value))
        elif tag == "pressure_sp":
            self.pressure_sp = float(value)

    def _command(self, on: bool) -> None:
        if on and not self.motor_on and not self.tripped:
            self.starts += 1
        self.motor_on = on and not self.tripped

    def call(self, method: str) -> None:
        if method == "Start":
            self._command(True)
        elif method == "Stop":
            self._command(False)
        elif method == "ResetFault":
            self.tripped = False
        else:
            raise TagAccessError(
                f"compressor has no method {method!r}; use Start, Stop or ResetFault"
            )
