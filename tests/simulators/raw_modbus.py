"""Modbus TCP by hand: MBAP header and PDU built and parsed here, no client library."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

MEI_READ_DEVICE_IDENTIFICATION = 0x0E
REPLY_TIMEOUT_S = 3.0
OBJECT_NAMES = {
    0x00: "VendorName",
    0x01: "ProductCode",
    0x02: "MajorMinorRevision",
    0x03: "VendorUrl",
    0x04: "ProductName",
    0x05: "ModelName",
}


@dataclass(frozen=True)
class Reply:
    transaction: int
    unit: int
    pdu: bytes

    @property
    def function(self) -> int:
        return self.pdu[0]


@dataclass(frozen=True)
class Identification:
    read_code: int
    conformity: int
    more_follows: int
    next_object: int
    objects: dict[int, str]


class RawModbusConnection:
    """One TCP connection; `exchange` sends a PDU to a unit and returns the reply's PDU."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._transaction = 0x1200

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> RawModbusConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def exchange(self, unit: int, pdu: bytes) -> Reply:
        self._transaction += 1
        # MBAP: transaction id, protocol id 0, length (unit id + PDU), unit id
        header = struct.pack(">HHHB", self._transaction, 0, len(pdu) + 1, unit)
        self._writer.write(header + pdu)
        await self._writer.drain()
        head = await asyncio.wait_for(self._reader.readexactly(7), REPLY_TIMEOUT_S)
        transaction, protocol, length, unit_back = struct.unpack(">HHHB", head)
        assert protocol == 0, head.hex()
        body = await asyncio.wait_for(self._reader.readexactly(length - 1), REPLY_TIMEOUT_S)
        assert transaction == self._transaction, (transaction, self._transaction)
        return Reply(transaction, unit_back, body)


def parse_identification(pdu: bytes) -> Identification:
    """Parse a 43 / MEI 14 response PDU (Modbus application protocol v1.1b3, 6.21)."""
    function, mei, read_code, conformity, more, next_object, count = pdu[:7]
    assert (function, mei) == (0x2B, MEI_READ_DEVICE_IDENTIFICATION), pdu.hex()
    objects: dict[int, str] = {}
    position = 7
    for _ in range(count):
        object_id, length = pdu[position], pdu[position + 1]
        value = pdu[position + 2 : position + 2 + length]
        assert len(value) == length, f"object {object_id:#x} truncated: {pdu.hex()}"
        objects[object_id] = value.decode("ascii")
        position += 2 + length
    assert position == len(pdu), f"trailing bytes after {count} objects: {pdu.hex()}"
    return Identification(read_code, conformity, more, next_object, objects)
