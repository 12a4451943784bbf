"""simulator -> gateway -> broker: MQTT values equal the simulator's truth, every word order."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from gateway_helpers import Listener, StartBroker, gateway_config

from edge_gateway.gateway import Gateway
from iiotlab.datasheet import Datasheet
from iiotlab.payloads import Telemetry
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


def matches(value: object, truths: list[object], tolerance: float) -> bool:
    for truth in truths:
        if isinstance(value, bool) or isinstance(truth, bool) or isinstance(value, str):
            if value == truth:
                return True
        elif (
            isinstance(value, int | float)
            and isinstance(truth, int | float)
            and abs(value - truth) <= tolerance + 1e-9 * max(1.0, abs(truth))
        ):
            return True
    return False


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
            check_device(sim, sheet, ears.payloads("telemetry", sheet.device))
            assert ears.payloads("status", sheet.device)[0]["state"] == "online"


def check_device(sim: Simulation, sheet: Datasheet, payloads: list[dict[str, object]]) -> None:
    device = str(sheet.device)
    seen: set[str] = set()
    compared = 0
    for raw in payloads:
        message = Telemetry.model_validate(raw)
        assert message.device == device and not message.replayed
        assert set((message.quality or {}).values()) <= {"good"}
        for name, value in message.metrics.items():
            tag = sheet.tag(name)
            truths = [sim.truth.value_at(device, name, message.ts + d) for d in (-150, 0, 150)]
            assert matches(value, truths, tag.tolerance or 0.0), (
                f"{device}.{name}: MQTT {value!r} vs simulator {truths!r} at {message.ts} "
                f"({tag.modbus})"
            )
            seen.add(name)
            compared += 1
    assert [p["seq"] for p in payloads] == list(range(len(payloads)))
    assert seen == {tag.name for tag in sheet.tags if tag.modbus is not None}
    assert compared >= len(seen)
