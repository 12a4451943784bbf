"""Scenario events show in the protocol values, and the ground truth records them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from modbus_helpers import read_tag
from pymodbus.client import AsyncModbusTcpClient

from simulators.scenario import ScenarioEvent, parse_scenario
from simulators.simulation import Simulation, SimulationConfig
from simulators.truth import read_truth_file

pytestmark = pytest.mark.integration
SECRET = "test-secret"


@pytest.fixture
async def tank(tmp_path: Path) -> AsyncIterator[Simulation]:
    config = SimulationConfig(
        plants=("tank", "energy"),
        lab="lab1",
        student="bob",
        course_secret=SECRET,
        enable_opcua=False,
        tick_hz=20.0,
        truth_log=tmp_path / "truth.jsonl",
    )
    async with Simulation(config) as sim:
        yield sim


async def _client(sim: Simulation) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=1, retries=0)
    assert await client.connect()
    return client


async def test_stuck_drift_spike_and_noise_show_on_modbus(tank: Simulation) -> None:
    client = await _client(tank)
    sheet = tank.datasheets["energy"]
    try:
        await tank.inject(ScenarioEvent(0, "sensor_stuck", "energy-1", "voltage", 5.0))
        stuck = [await read_tag(client, sheet, "voltage") for _ in range(3)]
        await asyncio.sleep(0.3)
        stuck.append(await read_tag(client, sheet, "voltage"))
        assert len(set(stuck)) == 1  # the real voltage is noisy; a stuck one is not
        await tank.inject(ScenarioEvent(0, "spike", "energy-1", "frequency", 1.0, 7.0))
        assert await read_tag(client, sheet, "frequency") > 56.0
        await tank.inject(ScenarioEvent(0, "drift", "energy-1", "power_factor", 5.0, -0.2))
        first = await read_tag(client, sheet, "power_factor")
        await asyncio.sleep(0.6)
        assert await read_tag(client, sheet, "power_factor") < first - 0.08
        await tank.inject(ScenarioEvent(0, "noise_burst", "energy-1", "current", 5.0, 30.0))
        await asyncio.sleep(0.2)
        true_current = float(tank.runtime("energy").plant.current)  # type: ignore[attr-defined]
        served = [await read_tag(client, sheet, "current") for _ in range(5)]
        assert max(abs(s - true_current) for s in served) > 5.0
    finally:
        client.close()
    kinds = [e.kind for e in tank.truth.events()]
    assert {"sensor_stuck", "spike", "drift", "noise_burst"} <= set(kinds)
    samples = tank.truth.samples("energy-1")
    tolerance = sheet.tag("voltage").tolerance or 0.0
    assert samples and abs(float(samples[-1][1]["voltage"]) - stuck[0]) <= tolerance


async def test_link_down_refuses_then_recovers(tank: Simulation) -> None:
    await tank.inject(ScenarioEvent(0, "modbus_link_down", None, None, 0.8))
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", tank.modbus_port)
    await asyncio.sleep(1.2)
    client = await _client(tank)
    try:
        assert await read_tag(client, tank.datasheets["tank"], "serial_number")
    finally:
        client.close()
    assert tank.truth.events("modbus_link_down")[0].detail["duration_s"] == 0.8


async def test_plc_restart_resets_the_process(tank: Simulation) -> None:
    runtime = tank.runtime("tank")
    runtime.write("pump_on", True, "api:test")
    await tank.inject(ScenarioEvent(0, "plc_restart", "tank-1", None, 0.0))
    assert runtime.snapshot()["pump_on"] is False
    assert tank.truth.events("plc_restart")


async def test_register_map_change_moves_the_tags(tank: Simulation) -> None:
    old = tank.datasheets["tank"]
    client = await _client(tank)
    try:
        await tank.inject(
            ScenarioEvent(0, "register_map_change", "tank-1", shift=50, word_order="DCBA")
        )
        new = tank.datasheets["tank"]
        level_old, level_new = old.tag("level").modbus, new.tag("level").modbus
        assert level_old and level_new and level_new.address == level_old.address + 50
        assert await read_tag(client, new, "serial_number") == runtime_serial(tank)
        response = await client.read_coils(
            old.tag("pump_on").modbus.address,  # type: ignore[union-attr]
            count=1,
            device_id=old.modbus.unit_id,
        )
        assert response.isError() and response.exception_code == 2
    finally:
        client.close()


def runtime_serial(sim: Simulation) -> object:
    return sim.runtime("tank").snapshot()["serial_number"]


async def test_scenario_runs_on_schedule_and_truth_file_has_it(tmp_path: Path) -> None:
    scenario = parse_scenario(
        "events:\n"
        "  - {at: 0.3, kind: sensor_stuck, tag: level, duration: 0.5}\n"
        "  - {at: 0.5, kind: spike, device: tank-1, tag: inflow, magnitude: 99}\n"
        "  - {at: 0.6, kind: sensor_stuck, device: mixer-9, tag: level, duration: 1}\n",
        "s.yaml",
    )
    path = tmp_path / "truth.jsonl"
    config = SimulationConfig(
        plants=("tank",),
        lab="lab1",
        student="bob",
        course_secret=SECRET,
        enable_opcua=False,
        scenario=scenario,
        truth_log=path,
    )
    async with Simulation(config) as sim:
        await asyncio.sleep(1.2)
        events = sim.truth.events()
        ts, values = sim.truth.samples("tank-1")[-1]
        assert sim.truth.value_at("tank-1", "level", ts) == values["level"]
    kinds = [e.kind for e in events]
    assert kinds.index("sensor_stuck") < kinds.index("spike")
    error = next(e for e in events if e.kind == "scenario_error")
    assert "mixer-9" in error.detail["error"] and "s.yaml:4" in error.detail["error"]
    samples, file_events = read_truth_file(path)
    assert len(samples) >= 8 and all(s["device"] == "tank-1" for s in samples)
    assert {"start", "sensor_stuck", "spike"} <= {e.kind for e in file_events}
    first_line = json.loads(path.read_text().splitlines()[0])
    assert first_line["type"] in ("sample", "event")
