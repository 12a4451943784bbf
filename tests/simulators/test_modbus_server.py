"""Modbus TCP server on loopback: values per datasheet, exception codes, writes, logging."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest
from modbus_helpers import close_enough, read_raw, read_tag, write_tag
from pymodbus.client import AsyncModbusTcpClient

from simulators.simulation import Simulation
from simulators.variants import PLANTS

pytestmark = pytest.mark.integration


async def _wait_for(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_port_zero_binds_and_every_tag_decodes_to_the_served_value(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    assert all_plants.modbus_port > 0
    for plant in PLANTS:
        sheet = all_plants.datasheets[plant]
        assert sheet.modbus.port == all_plants.modbus_port
        runtime = all_plants.runtime(plant)
        for tag in sheet.tags:
            for _ in range(3):  # a tick may land between the read and the snapshot
                before = runtime.snapshot()[tag.name]
                value = await read_tag(client, sheet, tag.name)
                if close_enough(tag, value, before) or close_enough(
                    tag, value, runtime.snapshot()[tag.name]
                ):
                    break
            else:
                pytest.fail(f"{plant}.{tag.name}: read {value!r}, served {before!r}")


async def test_unmapped_address_read_only_and_bad_value_exceptions(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    sheet = all_plants.datasheets["tank"]
    unit = sheet.modbus.unit_id
    used = {t.modbus.address for t in sheet.tags if t.modbus and t.modbus.table == "holding"}
    free = next(a for a in range(60000, 65000) if a not in used)
    response = await client.read_holding_registers(free, count=1, device_id=unit)
    assert response.isError() and response.exception_code == 2
    level = sheet.tag("level")
    assert level.modbus is not None
    response = await write_tag(client, sheet, "level", 1.0)
    if level.modbus.table == "holding":
        assert response.isError() and response.exception_code == 3
    else:  # input registers cannot be written at all: the address is not a holding one
        assert response.isError() and response.exception_code in (2, 3)
    response = await write_tag(client, sheet, "pump_speed_sp", 150.0)  # range is 0..100
    assert response.isError() and response.exception_code == 3
    response = await client.read_coils(0, count=1, device_id=250)  # nobody serves unit 250
    assert response.isError() and response.exception_code == 0x0B
    # the server survived every refusal
    assert await read_tag(client, sheet, "serial_number")


async def test_unsupported_function_answers_exception_01(all_plants: Simulation) -> None:
    unit = all_plants.datasheets["tank"].modbus.unit_id
    reader, writer = await asyncio.open_connection("127.0.0.1", all_plants.modbus_port)
    try:
        writer.write(struct.pack(">HHHBB", 7, 0, 2, unit, 0x41))  # function 0x41: none
        reply = await asyncio.wait_for(reader.readexactly(9), 3)
    finally:
        writer.close()
    transaction, _, _, unit_back, function, code = struct.unpack(">HHHBBB", reply)
    assert (transaction, unit_back, function, code) == (7, unit, 0x41 | 0x80, 1)


async def test_writes_change_the_process_and_are_logged_with_the_client(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    sheet = all_plants.datasheets["tank"]
    runtime = all_plants.runtime("tank")
    for name, value in (("valve_opening", 0.0), ("pump_speed_sp", 80.0), ("pump_on", True)):
        response = await write_tag(client, sheet, name, value)
        assert not response.isError(), f"{name}: {response}"
    assert await read_tag(client, sheet, "pump_on") is True
    assert abs(await read_tag(client, sheet, "pump_speed_sp") - 80.0) < 0.01
    await _wait_for(lambda: float(runtime.snapshot()["inflow"]) > 100)  # type: ignore[arg-type]
    level_before = float(runtime.snapshot()["level"])  # type: ignore[arg-type]
    await asyncio.sleep(1.0)
    assert float(await read_tag(client, sheet, "level")) > level_before
    writes = [w for w in all_plants.write_log if w.device == "tank-1"]
    assert [w.tag for w in writes] == ["valve_opening", "pump_speed_sp", "pump_on"]
    local_port = client.ctx.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    assert all(w.ok and w.protocol == "modbus" for w in writes)
    assert writes[0].source == f"modbus:127.0.0.1:{local_port}"
    assert any(e.kind == "write" and e.device == "tank-1" for e in all_plants.truth.events())
    refused = await write_tag(client, sheet, "pump_speed_sp", -5.0)
    assert refused.isError()
    assert all_plants.write_log[-1].ok is False and all_plants.write_log[-1].error


async def test_interlock_refusal_answers_exception_04(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    runtime = all_plants.runtime("tank")
    plant = runtime.plant  # type: ignore[attr-defined]
    plant.level = plant.constants["high_high_m"] + 0.05
    response = await write_tag(client, all_plants.datasheets["tank"], "pump_on", True)
    assert response.isError() and response.exception_code == 4
    assert all_plants.write_log[-1].ok is False
    assert "high-high" in str(all_plants.write_log[-1].error)


async def test_block_read_over_a_whole_table_run(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    sheet = all_plants.datasheets["packaging"]
    tags = sorted(
        (t for t in sheet.tags if t.modbus and t.modbus.table in ("holding", "input")),
        key=lambda t: t.modbus.address,  # type: ignore[union-attr]
    )
    first = tags[0]
    response = await read_raw(client, sheet, first)
    assert not response.isError()
