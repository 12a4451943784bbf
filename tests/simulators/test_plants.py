"""Process models: real dynamics, deterministic for a seed, commands change the process."""

from __future__ import annotations

import random

import pytest

from simulators.base import InterlockError, TagAccessError, TagValueError
from simulators.plants import PLANT_CLASSES, create_plant
from simulators.plants.common import ProcessPlant
from simulators.plants.packaging import FAULT, RUNNING

pytestmark = pytest.mark.unit


def _plant(kind: str, seed: int = 1, **constants: float) -> ProcessPlant:
    cls = PLANT_CLASSES[kind]
    merged = {**cls.random_constants(random.Random(seed)), **constants}
    return create_plant(kind, merged, random.Random(seed))


def _run(plant: ProcessPlant, seconds: float, dt: float = 0.1) -> None:
    for _ in range(round(seconds / dt)):
        plant.step(dt)


@pytest.mark.parametrize("kind", sorted(PLANT_CLASSES))
def test_same_seed_same_run_and_values_match_tags(kind: str) -> None:
    runs = []
    for _ in range(2):
        plant = _plant(kind, seed=7)
        plant.call("Start")
        _run(plant, 30)
        runs.append(plant.values())
    assert runs[0] == runs[1]
    assert set(runs[0]) == {tag.name for tag in PLANT_CLASSES[kind].tags}
    other = _plant(kind, seed=8)
    other.call("Start")
    _run(other, 30)
    assert other.values() != runs[0]


def test_reading_values_does_not_move_the_random_stream() -> None:
    a, b = _plant("tank", 3), _plant("tank", 3)
    for _ in range(50):
        a.step(0.1)
        b.step(0.1)
        for _ in range(3):
            a.values()
    assert a.values() == b.values()


def test_tank_pump_fills_and_valve_drains() -> None:
    tank = _plant("tank", initial_level_m=2.0)
    tank.write("valve_opening", 0.0)
    tank.write("pump_speed_sp", 100.0)
    tank.write("pump_on", True)
    _run(tank, 20)
    filled = tank.level
    assert filled > 2.2 and tank.values()["pump_running"] is True
    tank.write("pump_on", False)
    tank.write("valve_opening", 100.0)
    _run(tank, 20)
    assert tank.level < filled - 0.1
    assert tank.values()["outflow"] > 0


def test_tank_interlock_trips_pump_at_high_high_and_refuses_restart() -> None:
    tank = _plant("tank", initial_level_m=4.0, high_m=4.2, high_high_m=4.4)
    tank.write("valve_opening", 0.0)
    tank.write("pump_speed_sp", 100.0)
    tank.write("pump_on", True)
    _run(tank, 60)
    values = tank.values()
    assert values["level_high_high"] is True
    assert values["pump_on"] is False
    with pytest.raises(InterlockError):
        tank.write("pump_on", True)
    assert values["overflow_alarm"] is False  # the interlock kept it from overflowing


def test_writes_are_checked() -> None:
    tank = _plant("tank")
    with pytest.raises(TagAccessError):
        tank.write("level", 1.0)
    with pytest.raises(TagValueError):
        tank.write("pump_speed_sp", 150.0)
    with pytest.raises(TagAccessError):
        tank.write("nonexistent", 1)


def test_boiler_heats_and_relief_valve_limits_pressure() -> None:
    boiler = _plant("boiler", relief_bar=3.0)
    boiler.write("heater_power_sp", 100.0)
    boiler.write("burner_on", True)
    _run(boiler, 2)
    assert boiler.values()["burner_state"] == 1  # purge first
    _run(boiler, 600, dt=0.5)
    values = boiler.values()
    assert values["temperature"] > 100
    assert values["relief_count"] >= 1
    assert values["pressure"] < 3.0 + 0.5


def test_packaging_counts_faults_and_reset() -> None:
    line = _plant("packaging", first_fault_s=40.0, reject_rate=0.2)
    line.write("line_run", True)
    _run(line, 30)
    values = line.values()
    assert values["good_count"] > 5 and values["reject_count"] >= 1
    _run(line, 20)
    assert line.state == FAULT and line.values()["fault_code"] != 0
    assert line.values()["status_word"] & (1 << 4)
    line.write("fault_reset", True)
    line.disturbance = 0
    _run(line, 0.2)
    assert line.state == RUNNING


def test_compressor_bearing_wear_raises_vibration() -> None:
    comp = _plant("compressor", wear_per_hour_running=3600.0, initial_wear=0.0)
    comp.write("motor_on", True)
    _run(comp, 10)
    early = comp.values()["vibration_rms"]
    _run(comp, 50)
    late = comp.values()
    assert late["vibration_rms"] > early * 1.5 or late["tripped"] is True
    assert late["motor_current"] >= 0 and late["run_hours"] > comp.constants["initial_run_hours"]


def test_energy_counter_rolls_over() -> None:
    wrap = 2**32 * 0.001
    meter = _plant(
        "energy",
        energy_wrap_kwh=wrap,
        initial_energy_kwh=wrap - 0.05,
        base_load_kw=80.0,
        swing_kw=0.0,
    )
    _run(meter, 10)
    values = meter.values()
    assert 0 <= values["energy"] < 1.0  # wrapped past 2**32 Wh
    assert values["active_power"] > 50
    meter.write("breaker_closed", False)
    _run(meter, 1)
    assert meter.values()["current"] == 0
