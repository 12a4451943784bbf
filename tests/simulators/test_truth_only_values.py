"""Truth-only plant values: in the ground truth, served by no protocol (the bearing wear)."""

from __future__ import annotations

import asyncio

import pytest

from simulators.scenario import parse_scenario
from simulators.simulation import Simulation, SimulationConfig

pytestmark = pytest.mark.integration


async def test_bearing_wear_is_in_the_truth_and_nowhere_else() -> None:
    config = SimulationConfig(
        plants=("compressor",), lab="lab1", student="bob", enable_opcua=False, tick_hz=20.0
    )
    async with Simulation(config) as sim:
        runtime = sim.runtime("compressor")
        for event in parse_scenario(
            "- {at: 0, kind: operator_write, tag: motor_on, value: true}\n"
            "- {at: 0, kind: constant_change, constant: wear_per_hour_running,"
            " value: 36000, duration: 60}\n"
        ).events:
            await sim.inject(event)
        await asyncio.sleep(1.0)
        samples = sim.truth.samples("compressor-1")
        wear = [values["bearing_wear"] for _, values in samples]
        assert wear[-1] > wear[0]  # 10 % per running second: it grows tick by tick
        assert "bearing_wear" not in runtime.snapshot()  # what Modbus and OPC UA serve
        names = {tag.name for tag in sim.datasheets["compressor"].tags}
        assert "bearing_wear" not in names and names <= set(samples[-1][1])
