"""Fixtures: a running simulation (Modbus only, loopback, port 0) and a Modbus client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulators.simulation import Simulation, SimulationConfig
from simulators.variants import PLANTS

SECRET = "test-secret"


@pytest.fixture
async def all_plants() -> AsyncIterator[Simulation]:
    config = SimulationConfig(
        plants=PLANTS,
        lab="lab1",
        student="alice",
        course_secret=SECRET,
        enable_opcua=False,
        tick_hz=20.0,
    )
    async with Simulation(config) as sim:
        yield sim


@pytest.fixture
async def client(all_plants: Simulation) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=all_plants.modbus_port, timeout=2, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()
