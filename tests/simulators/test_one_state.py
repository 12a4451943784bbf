"""Modbus and OPC UA serve the same snapshot (one state behind both protocols)."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client
from modbus_helpers import close_enough, read_tag, write_tag
from pymodbus.client import AsyncModbusTcpClient

from simulators.simulation import Simulation, SimulationConfig

pytestmark = pytest.mark.integration


async def test_a_modbus_write_shows_on_opcua_and_both_match_truth() -> None:
    config = SimulationConfig(
        plants=("tank",), lab="lab1", student="dan", course_secret="test-secret"
    )
    async with Simulation(config) as sim:
        assert sim.opcua_url.startswith("opc.tcp://127.0.0.1:")
        sheet = sim.datasheets["tank"]
        assert sheet.opcua.endpoint == sim.opcua_url
        modbus = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=2, retries=0)
        assert await modbus.connect()
        try:
            response = await write_tag(modbus, sheet, "pump_speed_sp", 72.5)
            assert not response.isError()
            async with Client(sim.opcua_url, timeout=10) as opcua:
                for name in ("pump_speed_sp", "serial_number", "valve_opening"):
                    node_id = sheet.tag(name).opcua.node_id  # type: ignore[union-attr]
                    for _ in range(5):  # OPC UA publishes asynchronously, within a tick
                        over_opcua = await opcua.get_node(node_id).read_value()
                        over_modbus = await read_tag(modbus, sheet, name)
                        if close_enough(sheet.tag(name), over_modbus, over_opcua):
                            break
                        await asyncio.sleep(0.05)
                    else:
                        pytest.fail(f"{name}: modbus {over_modbus!r}, opcua {over_opcua!r}")
            assert sim.runtime("tank").snapshot()["pump_speed_sp"] == 72.5
        finally:
            modbus.close()
