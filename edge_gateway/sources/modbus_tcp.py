"""A Modbus TCP client that keeps several requests in flight on one connection.

Modbus TCP numbers every request with a transaction id and the answer carries it back, so
a client may send the next request before the last answer arrives. pymodbus's client
serialises its requests behind a lock (3.16), so a gateway reading 33 blocks pays 33
round trips per poll; this client sends them back to back and matches the answers by
transaction id. `send()` returns a future at once: the caller bounds how many it keeps
open (`ModbusSource` uses its `pipeline` setting; 1 is the classic one-at-a-time client).

Function codes: 1, 2 (bits), 3, 4 (registers), 5 (one coil), 16 (registers). An answer
with the exception bit raises `ModbusDeviceError`; a lost connection or a request older
than `timeout_s` fails every request in flight with ConnectionError / TimeoutError and
closes the connection (the caller reconnects with its backoff).
"""

from __future__ import annotations

import asyncio
import struct

from iiotlab.errors import IiotlabError

_MBAP = struct.Struct(">HHHB")
_READ = struct.Struct(">BHH")
READ_FUNCTIONS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class ModbusDeviceError(IiotlabError):
    """The device answered with a Modbus exception (e.g. 02, illegal data address)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"device answered exception {code} ({_EXCEPTIONS.get(code, '?')})")
        self.code = code


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, client: ModbusTcpClient) -> None:
        self._client = client
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 8:
            transaction, _, length, _ = _MBAP.unpack_from(buffer)
            if len(buffer) < 6 + length:
                return
            pdu = bytes(buffer[7 : 6 + length])
            del buffer[: 6 + length]
            self._client._answer(transaction, pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._lost(self, exc)


class ModbusTcpClient:
    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._transport: asyncio.Transport | None = None
        self._protocol: _ClientProtocol | None = None
        self._pending: dict[int, tuple[asyncio.Future[bytes], int, asyncio.TimerHandle]] = {}
        self._next_transaction = 0
        self._outgoing: list[bytes] = []

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> None:
        """Open the connection; OSError or TimeoutError when the device is unreachable."""
        if self.connected:
            return
        loop = asyncio.get_running_loop()
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _ClientProtocol(self), self.host, self.port),
            self.timeout_s,
        )
        assert isinstance(transport, asyncio.Transport)
        self._transport, self._protocol = transport, protocol

    def close(self) -> None:
        """Close the connection; requests in flight fail with ConnectionError."""
        self._outgoing.clear()
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()
        self._fail_all(ConnectionError("the connection was closed"))

    # -- requests ----------------------------------------------------------------------
    def send(self, unit: int, pdu: bytes) -> asyncio.Future[bytes]:
        """Send one request now; the future gets the answer's data (after the byte count
        for reads, the echoed fields for writes)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError("not connected")
        loop = asyncio.get_running_loop()
        transaction = self._next_transaction
        self._next_transaction = (transaction + 1) & 0xFFFF
        future: asyncio.Future[bytes] = loop.create_future()
        timer = loop.call_later(self.timeout_s, self._timed_out)
        self._pending[transaction] = (future, pdu[0], timer)
        if not self._outgoing:  # requests made in one turn of the loop go in one write
            loop.call_soon(self.flush)
        self._outgoing.append(_MBAP.pack(transaction, 0, len(pdu) + 1, unit) + pdu)
        return future

    def flush(self) -> None:
        """Write the requests sent so far now, not at the end of this turn of the loop."""
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(outgoing))

    def send_read(self, table: str, address: int, count: int, unit: int) -> asyncio.Future[bytes]:
        return self.send(unit, _READ.pack(READ_FUNCTIONS[table], address, count))

    async def write_coil(self, address: int, value: bool, unit: int) -> None:
        await self.send(unit, struct.pack(">BHH", 5, address, 0xFF00 if value else 0))

    async def write_registers(self, address: int, words: list[int], unit: int) -> None:
        body = struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words), *words)
        await self.send(unit, body)

    # -- answers (called by the protocol) ------------------------------------------------
    def _answer(self, transaction: int, pdu: bytes) -> None:
        entry = self._pending.pop(transaction, None)
        if entry is None:
            return  # an answer to a request that timed out: ignore it
        future, function, timer = entry
        timer.cancel()
        if future.done():
            return
        if pdu[0] == function | 0x80:
            future.set_exception(ModbusDeviceError(pdu[1] if len(pdu) > 1 else 0))
        elif function in (1, 2, 3, 4):
            future.set_result(pdu[2 : 2 + pdu[1]])
        else:
            future.set_result(pdu[1:])

    def _timed_out(self) -> None:
        error = TimeoutError(f"no answer from {self.host}:{self.port} within {self.timeout_s} s")
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()
        self._fail_all(error)

    def _lost(self, protocol: _ClientProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._transport = self._protocol = None
        self._fail_all(ConnectionError(f"connection to {self.host}:{self.port} lost ({exc})"))

    def _fail_all(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future, _, timer in pending.values():
            timer.cancel()
            if not future.done():
                future.set_exception(error)
                future.exception()  # a request nobody awaits must not warn


def unpack_bits(data: bytes, count: int) -> list[bool]:
    """Coils / discrete inputs of a read answer: LSB of the first byte first."""
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]
