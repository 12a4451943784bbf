"""simulator -> gateway -> broker: MQTT values equal the simulator's truth, every word order."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from gateway_helpers import Listener, StartBroker, assert_served_in_order, gateway_config

from edge_gateway.gateway import Gateway
from iiotlab.datasheet import Datasheet
from iiotlab.payloads import Telemetry
from simulators.runtime import now_ms
from simulators.simulation import Simulation, SimulationConfig
from simulators.variants import PLANTS

pytestmark = pytest.mark.integration

STUDENT = {"embedded": "alice", "mosquitto": "bob"}


def word_orders(datasheets: list[Datasheet]) -> set[str]:
    return {
        tag.modbus.word_order
        for sheet in datasheets
        for tag in sheet.tags
        if tag.modbus is not None and tag.modbus.type in ("int32", "uint32", "float32", "float64")
    }


async def test_values_in_mqtt_equal_simulator_truth(
    broker_kind: str, start_broker: StartBroker, tmp_path: Path
) -> None:
    student = STUDENT[broker_kind]
    sim_config = SimulationConfig(plants=PLANTS, student=student, enable_opcua=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        sheets = list(sim.datasheets.values())
        started_ms = now_ms()
        assert word_orders(sheets) == {"ABCD", "CDAB", "BADC", "DCBA"}
        async with AsyncExitStack() as stack:
            for sheet in sheets:
                config = gateway_config(sheet, broker.url, tmp_path / str(sheet.device))
                await stack.enter_async_context(Gateway(config))
            await ears.wait_for(
                lambda: all(ears.payloads("telemetry", s.device) for s in sheets),
                what="telemetry of every device",
            )
            await asyncio.sleep(2.0)  # report by exception: changes keep coming
        await ears.wait_for(
            lambda: all(
                ears.payloads("status", s.device)[-1]["state"] == "offline" for s in sheets
            ),
            what="offline status of every gateway",
        )
        for sheet in sheets:
            assert sheet.device is not None
            check_device(sim, sheet, ears.payloads("telemetry", sheet.device), started_ms)
            assert ears.payloads("status", sheet.device)[0]["state"] == "online"


def check_device(
    sim: Simulation, sheet: Datasheet, payloads: list[dict[str, object]], started_ms: int
) -> None:
    device = str(sheet.device)
    for raw in payloads:
        message = Telemetry.model_validate(raw)
        assert message.device == device and not message.replayed
    compared = assert_served_in_order(sim, sheet, payloads, started_ms)
    assert [p["seq"] for p in payloads] == list(range(len(payloads)))
    assert set(compared) == {tag.name for tag in sheet.tags if tag.modbus is not None}
