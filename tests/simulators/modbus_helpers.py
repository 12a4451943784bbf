"""Client-side helpers: read and write a tag the way a student's gateway would."""

from __future__ import annotations

from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.registers import RegisterFormat, decode, encode


def tag_format(tag: TagSpec) -> RegisterFormat:
    m = tag.modbus
    assert m is not None
    return RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1)


def register_count(tag: TagSpec) -> int:
    m = tag.modbus
    assert m is not None
    if m.table in ("coil", "discrete") or m.bit is not None:
        return 1
    return tag_format(tag).count


async def read_raw(client: AsyncModbusTcpClient, datasheet: Datasheet, tag: TagSpec) -> Any:
    m = tag.modbus
    assert m is not None
    read = {
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }[m.table]
    return await read(m.address, count=register_count(tag), device_id=datasheet.modbus.unit_id)


async def read_tag(client: AsyncModbusTcpClient, datasheet: Datasheet, name: str) -> Any:
    tag = datasheet.tag(name)
    response = await read_raw(client, datasheet, tag)
    assert not response.isError(), f"{name}: {response}"
    m = tag.modbus
    assert m is not None
    if m.table in ("coil", "discrete"):
        return bool(response.bits[0])
    if m.bit is not None:
        return bool((response.registers[0] >> m.bit) & 1)
    return decode(list(response.registers), tag_format(tag))


async def write_tag(
    client: AsyncModbusTcpClient, datasheet: Datasheet, name: str, value: Any
) -> Any:
    """Write a tag; returns the response (check .isError() / .exception_code)."""
    tag = datasheet.tag(name)
    m = tag.modbus
    assert m is not None
    unit = datasheet.modbus.unit_id
    if m.table == "coil":
        return await client.write_coil(m.address, bool(value), device_id=unit)
    words = encode(value, tag_format(tag))
    return await client.write_registers(m.address, words, device_id=unit)


def close_enough(tag: TagSpec, read: Any, truth: Any) -> bool:
    if isinstance(truth, bool | str) or isinstance(read, str):
        return bool(read == truth)
    tolerance = tag.tolerance or 0.0
    return abs(float(read) - float(truth)) <= tolerance + 1e-6 * max(1.0, abs(float(truth)))
