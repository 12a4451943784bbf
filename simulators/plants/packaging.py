"""Packaging line: conveyor, machine state, good/reject counters, seeded faults (OEE)."""

from __future__ import annotations

import random

from simulators.base import TagAccessError, TagDefinition, Value
from simulators.plants.common import SERIAL_TAG, ProcessPlant, first_order

IDLE, RUNNING, STARVED, BLOCKED, FAULT = 0, 1, 2, 3, 4
STATE_NAMES = ("idle", "running", "starved", "blocked", "fault")
# status word bits (bit 0 = least significant)
BIT_RUNNING, BIT_IDLE, BIT_STARVED, BIT_BLOCKED, BIT_FAULT, BIT_RUN_CMD = range(6)


class PackagingPlant(ProcessPlant):
    kind = "packaging"
    tags = (
        TagDefinition("line_run", "", "Line run command (start/stop)", "bool", "rw", (0, 1)),
        TagDefinition(
            "fault_reset", "", "Fault reset command (reads back 0)", "bool", "rw", (0, 1)
        ),
        TagDefinition(
            "conveyor_speed_sp",
            "m/min",
            "Conveyor speed setpoint",
            "float",
            "rw",
            (0.0, 60.0),
            0.01,
        ),
        TagDefinition("conveyor_speed", "m/min", "Conveyor speed", "float", "r", (0.0, 60.0), 0.5),
        TagDefinition(
            "state", "", "0 idle, 1 running, 2 starved, 3 blocked, 4 fault", "int", "r", (0, 4)
        ),
        TagDefinition(
            "status_word",
            "",
            "bit0 running, bit1 idle, bit2 starved, bit3 blocked, bit4 fault, bit5 run command",
            "int",
            "r",
            (0, 65535),
        ),
        TagDefinition(
            "good_count", "pcs", "Good packs since start", "counter", "r", (0, 4294967295), 2
        ),
        TagDefinition(
            "reject_count", "pcs", "Rejected packs since start", "counter", "r", (0, 2147483647), 1
        ),
        TagDefinition("cycle_time", "s", "Last machine cycle time", "float", "r", (0.0, 60.0), 0.2),
        TagDefinition(
            "ideal_cycle_time",
            "s",
            "Ideal cycle time at full speed",
            "float",
            "r",
            (0.0, 60.0),
            0.001,
        ),
        TagDefinition("fault_code", "", "Active fault code, 0 = none", "int", "r", (0, 999)),
        SERIAL_TAG,
    )

    @classmethod
    def default_constants(cls) -> dict[str, float]:
        return {
            "ideal_cycle_s": 1.0,  # one pack per second at rated speed
            "rated_speed": 40.0,  # m/min at which the ideal cycle time is reached
            "reject_rate": 0.03,
            "mean_time_between_faults_s": 180.0,
            "mean_starve_interval_s": 90.0,
            "mean_block_interval_s": 120.0,
            "first_fault_s": 60.0,
        }

    @classmethod
    def random_constants(cls, rng: random.Random) -> dict[str, float]:
        constants = cls.default_constants()
        constants["ideal_cycle_s"] = round(rng.uniform(0.6, 1.5), 2)
        constants["rated_speed"] = round(rng.uniform(30.0, 50.0), 1)
        constants["reject_rate"] = round(rng.uniform(0.01, 0.06), 3)
        constants["mean_time_between_faults_s"] = round(rng.uniform(120.0, 300.0))
        constants["first_fault_s"] = round(rng.uniform(30.0, 120.0))
        return constants

    def __init__(self, constants: dict[str, float], rng: random.Random) -> None:
        super().__init__(constants, rng)
        self.line_run = False
        self.speed_sp = self.constants["rated_speed"]
        self.speed = 0.0
        self.fault_code = 0
        self.good = 0
        self.rejects = 0
        self.cycle_progress = 0.0
        self.cycle_time = 0.0
        self.cycle_elapsed = 0.0
        self.disturbance = IDLE  # STARVED or BLOCKED while one lasts
        self.disturbance_left = 0.0
        self.next_fault_s = self.constants["first_fault_s"]

    @property
    def state(self) -> int:
        if self.fault_code:
            return FAULT
        if not self.line_run:
            return IDLE
        return self.disturbance if self.disturbance else RUNNING

    def _roll_disturbances(self, dt: float) -> None:
        c = self.constants
        if self.time_s >= self.next_fault_s:
            self.fault_code = self.rng.choice((101, 102, 205, 310, 420))
            self.next_fault_s = self.time_s + self.rng.expovariate(
                1.0 / c["mean_time_between_faults_s"]
            )
        if self.disturbance:
            self.disturbance_left -= dt
            if self.disturbance_left <= 0:
                self.disturbance = IDLE
        elif self.rng.random() < dt / c["mean_starve_interval_s"]:
            self.disturbance, self.disturbance_left = STARVED, self.rng.uniform(2.0, 8.0)
        elif self.rng.random() < dt / c["mean_block_interval_s"]:
            self.disturbance, self.disturbance_left = BLOCKED, self.rng.uniform(2.0, 6.0)

    def step(self, dt: float) -> None:
        c = self.constants
        if self.line_run:
            self._roll_disturbances(dt)
        moving = self.state == RUNNING
        self.speed = first_order(self.speed, self.speed_sp if moving else 0.0, 0.5, dt)
        if moving and self.speed > 0.5:
            self.cycle_elapsed += dt
            self.cycle_progress += dt * self.speed / c["rated_speed"] / c["ideal_cycle_s"]
            if self.cycle_progress >= 1.0:
                self.cycle_progress -= 1.0
                self.cycle_time = self.cycle_elapsed * self.rng.uniform(0.97, 1.03)
                self.cycle_elapsed = 0.0
                if self.rng.random() < c["reject_rate"]:
                    self.rejects += 1
                else:
                    self.good += 1
        self.time_s += dt

    def status_word(self) -> int:
        state = self.state
        bits = {
            BIT_RUNNING: state == RUNNING,
            BIT_IDLE: state == IDLE,
            BIT_STARVED: state == STARVED,
            BIT_BLOCKED: state == BLOCKED,
            BIT_FAULT: state == FAULT,
            BIT_RUN_CMD: self.line_run,
        }
        return sum(1 << bit for bit, on in bits.items() if on)

    def values(self) -> dict[str, Value]:
        return {
            "line_run": self.line_run,
            "fault_reset": False,
            "conveyor_speed_sp": self.speed_sp,
            "conveyor_speed": round(self.speed, 3),
            "state": self.state,
            "status_word": self.status_word(),
            "good_count": self.good % 2**32,
            "reject_count": self.rejects % 2**31,
            "cycle_time": round(self.cycle_time, 3),
            "ideal_cycle_time": self.constants["ideal_cycle_s"],
            "fault_code": self.fault_code,
            "serial_number": self.serial_number,
        }

    def _apply(self, tag: str, value: Value) -> None:
        if tag == "line_run":
            self.line_run = bool(value)
        elif tag == "fault_reset":
            if value:
                self.fault_code = 0
        elif tag == "conveyor_speed_sp":
            self.speed_sp = float(value)

    def call(self, method: str) -> None:
        if method == "Start":
            self.line_run = True
        elif method == "Stop":
            self.line_run = False
        elif method == "ResetFault":
            self.fault_code = 0
        else:
            raise TagAccessError(
                f"packaging has no method {method!r}; use Start, Stop or ResetFault"
            )
