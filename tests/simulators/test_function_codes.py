"""The simulated PLC serves only the function codes a plant needs, and says who made it.

Raw Modbus TCP frames over loopback (MBAP built by hand): unsupported codes answer
exception 01 with the request's code | 0x80, function 43 / MEI 14 answers the datasheet's
vendor data, and the read/write codes keep working on the same connection.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from raw_modbus import OBJECT_NAMES, RawModbusConnection, parse_identification

from iiotlab.datasheet import Datasheet
from iiotlab.registers import RegisterFormat, decode, encode
from simulators.simulation import Simulation
from simulators.variants import PLANTS

pytestmark = pytest.mark.integration

ILLEGAL_FUNCTION = 0x01
MBPOLL = shutil.which("mbpoll")
# (case, request PDU); "{a}" cases address a writable holding register of the plant
REFUSED = [
    ("08 diagnostics: return query data", bytes((0x08, 0x00, 0x00, 0x12, 0x34))),
    ("08 diagnostics: bus message count", bytes((0x08, 0x00, 0x0B, 0x00, 0x00))),
    ("07 read exception status", bytes((0x07,))),
    ("11 get comm event counter", bytes((0x0B,))),
    ("12 get comm event log", bytes((0x0C,))),
    ("17 report server id", bytes((0x11,))),
    ("20 read file record", bytes((0x14, 0x07, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01))),
    ("21 write file record", bytes((0x15, 0x09, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0, 7))),
    ("22 mask write register", b"{a}\x16"),
    ("24 read FIFO queue", b"{a}\x18"),
    ("0x80", bytes((0x80, 0x00, 0x00, 0x00, 0x01))),
    ("0x81", bytes((0x81, 0x00, 0x00, 0x00, 0x01))),
    ("0x83 (a read holding code with bit 7 set)", bytes((0x83, 0x00, 0x00, 0x00, 0x01))),
    ("0x85", bytes((0x85, 0x00, 0x00, 0xFF, 0x00))),
    ("0xFF", bytes((0xFF,))),
    ("unassigned 0x09", bytes((0x09, 0x00, 0x00))),
    ("unassigned 0x64", bytes((0x64, 0x00, 0x00, 0x00, 0x01))),
    ("43 / MEI 13 (CANopen)", bytes((0x2B, 0x0D, 0x00, 0x00))),
]


def _writable_holding_address(sheet: Datasheet) -> int:
    return next(
        t.modbus.address
        for t in sheet.tags
        if t.modbus is not None and t.modbus.table == "holding" and t.access == "rw"
    )


def _request(template: bytes, sheet: Datasheet) -> bytes:
    if not template.startswith(b"{a}"):
        return template
    function, address = template[3], _writable_holding_address(sheet)
    if function == 0x16:  # AND mask 0xFFFF, OR mask 0: a write that changes nothing
        return struct.pack(">BHHH", function, address, 0xFFFF, 0x0000)
    return struct.pack(">BH", function, address)


@pytest.fixture
async def raw(all_plants: Simulation) -> AsyncIterator[RawModbusConnection]:
    connection = await RawModbusConnection.open(all_plants.modbus_port)
    yield connection
    await connection.close()


@pytest.mark.parametrize(("case", "template"), REFUSED, ids=[case for case, _ in REFUSED])
async def test_unsupported_function_answers_exception_01(
    all_plants: Simulation, raw: RawModbusConnection, case: str, template: bytes
) -> None:
    sheet = all_plants.datasheets["tank"]
    unit = sheet.modbus.unit_id
    request = _request(template, sheet)
    reply = await raw.exchange(unit, request)
    assert reply.unit == unit
    assert reply.pdu == bytes((request[0] | 0x80, ILLEGAL_FUNCTION)), (
        f"{case}: answered {reply.pdu.hex()}"
    )
    assert b"Pymodbus" not in reply.pdu
    # the refusal changed nothing and the connection still serves a normal read
    serial = sheet.tag("serial_number")
    assert serial.modbus is not None
    function = 0x03 if serial.modbus.table == "holding" else 0x04
    answer = await raw.exchange(unit, struct.pack(">BHH", function, serial.modbus.address, 8))
    assert answer.pdu[:2] == bytes((function, 16)), answer.pdu.hex()
    words = list(struct.unpack(">8H", answer.pdu[2:]))
    text = decode(words, RegisterFormat("string", length=8))
    assert text == all_plants.runtime("tank").snapshot()["serial_number"]


async def test_read_device_identification_answers_the_datasheet_vendor_data(
    all_plants: Simulation, raw: RawModbusConnection
) -> None:
    for plant in PLANTS:
        sheet = all_plants.datasheets[plant]
        identity = sheet.identity
        assert identity is not None
        unit = sheet.modbus.unit_id
        basic = parse_identification((await raw.exchange(unit, b"\x2b\x0e\x01\x00")).pdu)
        assert basic.objects == {
            0x00: identity.vendor_name,
            0x01: identity.product_code,
            0x02: identity.revision,
        }, plant
        assert (basic.read_code, basic.conformity, basic.more_follows) == (1, 0x82, 0)
        regular = parse_identification((await raw.exchange(unit, b"\x2b\x0e\x02\x00")).pdu)
        assert {OBJECT_NAMES[k]: v for k, v in regular.objects.items()} == {
            "VendorName": identity.vendor_name,
            "ProductCode": identity.product_code,
            "MajorMinorRevision": identity.revision,
            "VendorUrl": identity.vendor_url,
            "ProductName": identity.product_name,
            "ModelName": identity.model_name,
        }, plant
        assert not any("pymodbus" in value.lower() for value in regular.objects.values())


async def test_read_device_identification_access_rules(
    all_plants: Simulation, raw: RawModbusConnection
) -> None:
    sheet = all_plants.datasheets["energy"]
    identity = sheet.identity
    assert identity is not None
    unit = sheet.modbus.unit_id
    one = parse_identification((await raw.exchange(unit, b"\x2b\x0e\x04\x04")).pdu)
    assert one.objects == {0x04: identity.product_name}
    from_product_code = parse_identification((await raw.exchange(unit, b"\x2b\x0e\x01\x01")).pdu)
    assert list(from_product_code.objects) == [0x01, 0x02]
    unknown_start = parse_identification((await raw.exchange(unit, b"\x2b\x0e\x01\x40")).pdu)
    assert list(unknown_start.objects) == [0x00, 0x01, 0x02]  # restarts at object 0
    assert (await raw.exchange(unit, b"\x2b\x0e\x04\x06")).pdu == b"\xab\x02"  # no such object
    assert (await raw.exchange(unit, b"\x2b\x0e\x05\x00")).pdu == b"\xab\x03"  # bad read code
    assert (await raw.exchange(250, b"\x2b\x0e\x01\x00")).pdu == b"\xab\x0b"  # nobody is 250


async def test_a_client_library_reads_the_identification_too(
    all_plants: Simulation, client: AsyncModbusTcpClient
) -> None:
    sheet = all_plants.datasheets["tank"]
    assert sheet.identity is not None
    response = await client.read_device_information(
        read_code=2, object_id=0, device_id=sheet.modbus.unit_id
    )
    assert isinstance(response, ReadDeviceInformationResponse), response
    assert response.information[0x00] == sheet.identity.vendor_name.encode()
    assert response.information[0x05] == (sheet.identity.model_name or "").encode()


async def test_supported_read_and_write_codes_still_work(
    all_plants: Simulation, raw: RawModbusConnection
) -> None:
    sheet = all_plants.datasheets["tank"]
    unit = sheet.modbus.unit_id
    runtime = all_plants.runtime("tank")
    pump_on = sheet.tag("pump_on")
    assert pump_on.modbus is not None and pump_on.modbus.table == "coil"
    coil = pump_on.modbus.address
    written = await raw.exchange(unit, struct.pack(">BHH", 0x05, coil, 0xFF00))
    assert written.pdu == struct.pack(">BHH", 0x05, coil, 0xFF00)
    read = await raw.exchange(unit, struct.pack(">BHH", 0x01, coil, 1))
    assert read.pdu == bytes((0x01, 1, 1))
    assert runtime.snapshot()["pump_on"] is True
    # 23 read/write multiple registers: write a register with its own value, read it back
    address = _writable_holding_address(sheet)
    before = await raw.exchange(unit, struct.pack(">BHH", 0x03, address, 1))
    assert before.pdu[:2] == b"\x03\x02", before.pdu.hex()
    (word,) = struct.unpack(">H", before.pdu[2:])
    request = struct.pack(">BHHHHBH", 0x17, address, 1, address, 1, 2, word)
    both = await raw.exchange(unit, request)
    assert both.pdu == struct.pack(">BBH", 0x17, 2, word)


async def _mbpoll(port: int, unit: int, *args: str) -> tuple[int, str]:
    assert MBPOLL is not None
    command = [MBPOLL, "-m", "tcp", "-p", str(port), "-a", str(unit), "-0", "-1", "-o", "2"]
    process = await asyncio.create_subprocess_exec(
        *command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll (Debian package mbpoll) is not installed")
async def test_mbpoll_writes_and_reads_through_the_restricted_decoder(
    all_plants: Simulation,
) -> None:
    """libmodbus' mbpoll sends 16, 05 and 03 (it cannot send 08, 17 or 43 over TCP)."""
    sheet = all_plants.datasheets["tank"]
    unit, port = sheet.modbus.unit_id, all_plants.modbus_port
    runtime = all_plants.runtime("tank")
    speed = sheet.tag("pump_speed_sp")
    m = speed.modbus
    assert m is not None and m.table == "holding"
    words = encode(61.5, RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1))
    host_then_values = ["127.0.0.1", "--", *map(str, words)]
    code, out = await _mbpoll(port, unit, "-t", "4", "-r", str(m.address), *host_then_values)
    assert code == 0 and f"Written {len(words)} references" in out, out
    assert runtime.snapshot()["pump_speed_sp"] == pytest.approx(61.5, abs=speed.tolerance)
    pump_on = sheet.tag("pump_on")
    assert pump_on.modbus is not None
    code, out = await _mbpoll(
        port, unit, "-t", "0", "-r", str(pump_on.modbus.address), "127.0.0.1", "1"
    )
    assert code == 0 and "Written 1 references" in out, out
    assert runtime.snapshot()["pump_on"] is True
    count = str(len(words))
    code, out = await _mbpoll(port, unit, "-t", "4", "-r", str(m.address), "-c", count, "127.0.0.1")
    assert code == 0, out
    read = [int(v) & 0xFFFF for v in re.findall(r"^\[\d+\]:\s+(-?\d+)", out, re.MULTILINE)]
    assert read == words, out
    used = {t.modbus.address for t in sheet.tags if t.modbus and t.modbus.table == "holding"}
    free = next(a for a in range(60000, 65000) if a not in used)
    code, out = await _mbpoll(port, unit, "-t", "4", "-r", str(free), "127.0.0.1")
    assert code != 0 and "Illegal data address" in out, out
