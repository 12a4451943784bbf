"""A minimal Modbus TCP client for probes: raw MBAP framing, exact codes on the wire.

The grader uses it to test a student's Modbus device (a protecting proxy): it must send
exactly the function code a check names and see exactly the exception code the device
answers, so it frames requests itself instead of going through a client library that
retries, reconnects or turns exceptions into text. Only standard functions 1-6, 15, 16.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass
from typing import Self

READ_FUNCTIONS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


class ModbusLinkError(Exception):
    """No usable reply: connection refused or closed, timeout, malformed frame."""


@dataclass(frozen=True)
class ModbusReply:
    function: int  # the reply's function code: the request's, | 0x80 on an exception
    data: bytes  # the PDU after the function code

    @property
    def exception_code(self) -> int | None:
        if self.function & 0x80 and self.data:
            return self.data[0]
        return None

    def describe(self) -> str:
        code = self.exception_code
        if code is None:
            return f"success (function {self.function})"
        return f"exception {code:02d} ({EXCEPTION_NAMES.get(code, 'non-standard')})"

    def registers(self) -> list[int]:
        """Words of a read-registers reply (FC 3, 4)."""
        if self.exception_code is not None or not self.data:
            raise ModbusLinkError(f"not a register reply: {self.describe()}")
        size = self.data[0]
        if size % 2 or len(self.data) < 1 + size:
            raise ModbusLinkError(f"malformed register reply: {self.data.hex()}")
        return [int.from_bytes(self.data[1 + i : 3 + i], "big") for i in range(0, size, 2)]

    def bits(self, count: int) -> list[bool]:
        """Bits of a read-bits reply (FC 1, 2), least significant bit first."""
        if self.exception_code is not None or not self.data:
            raise ModbusLinkError(f"not a bit reply: {self.describe()}")
        payload = self.data[1 : 1 + self.data[0]]
        if len(payload) * 8 < count:
            raise ModbusLinkError(f"reply has {len(payload) * 8} bits, asked for {count}")
        return [bool(payload[i // 8] >> (i % 8) & 1) for i in range(count)]


def read_pdu(function: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", function, address, count)


def write_single_pdu(function: int, address: int, value: int) -> bytes:
    """FC 5 (value True/False as 0xFF00/0x0000) or FC 6 (one word)."""
    if function == 5:
        value = 0xFF00 if value else 0x0000
    return struct.pack(">BHH", function, address, value)


def write_registers_pdu(address: int, words: list[int]) -> bytes:
    """FC 16."""
    return struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words), *words)


def write_coils_pdu(address: int, bits: list[bool]) -> bytes:
    """FC 15."""
    packed = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            packed[i // 8] |= 1 << (i % 8)
    return struct.pack(">BHHB", 15, address, len(bits), len(packed)) + bytes(packed)


class RawModbusClient:
    """One TCP connection; requests are sent one at a time."""

    def __init__(self, host: str, port: int, unit: int, *, timeout_s: float = 3.0) -> None:
        self.host, self.port, self.unit, self.timeout_s = host, port, unit, timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._transaction = 0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ModbusLinkError(f"cannot connect to {self.host}:{self.port}: {exc}") from None

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def request(self, pdu: bytes) -> ModbusReply:
        """Send one PDU, return the reply with the same transaction id."""
        if self._reader is None or self._writer is None:
            raise ModbusLinkError("not connected")
        self._transaction = (self._transaction + 1) % 0x10000
        header = struct.pack(">HHHB", self._transaction, 0, len(pdu) + 1, self.unit)
        try:
            self._writer.write(header + pdu)
            await self._writer.drain()
            async with asyncio.timeout(self.timeout_s):
                return await self._reply(self._reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            closed = isinstance(exc, asyncio.IncompleteReadError)
            reason = "connection closed" if closed else str(exc) or type(exc).__name__
            raise ModbusLinkError(f"no reply: {reason}") from None

    async def _reply(self, reader: asyncio.StreamReader) -> ModbusReply:
        while True:
            transaction, protocol, length, _unit = struct.unpack(
                ">HHHB", await reader.readexactly(7)
            )
            if protocol != 0 or not 2 <= length <= 254:
                await self.close()
                raise ModbusLinkError(f"malformed MBAP header (protocol {protocol}, {length})")
            body = await reader.readexactly(length - 1)
            if transaction == self._transaction:  # else a late reply to an earlier request
                return ModbusReply(body[0], body[1:])
