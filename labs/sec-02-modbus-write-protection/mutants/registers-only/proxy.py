"""sec-02 mutant: only register reads pass; coil and discrete-input reads are refused.

The mistake: the student took "read-only" to mean "registers only" and refuses functions
1 and 2 (read coils, read discrete inputs) with the writes, so a SCADA client sees no pump
state and no level switch through the proxy.

Otherwise the solution: a protecting Modbus TCP proxy.

SCADA clients connect here (127.0.0.1:IIOTLAB_PROXY_PORT) instead of to the PLC
(IIOTLAB_MODBUS_HOST:IIOTLAB_MODBUS_PORT). Read functions 1-4 are forwarded and the PLC's
answer is relayed; every other function (the writes 5, 6, 15, 16 and anything unknown) is
answered here with exception 01, illegal function, and never reaches the PLC.

A Modbus TCP frame is a 7-byte MBAP header followed by the PDU:

    transaction id (2) | protocol id (2, always 0) | length (2) | unit id (1) | PDU
                                                     ^ unit id + PDU bytes

The PDU starts with the function code; an exception answer is (function | 0x80, code).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct

READ_FUNCTIONS = {3, 4}  # the mistake: 1 and 2 (coils, discrete inputs) are reads too
ILLEGAL_FUNCTION = 0x01
TARGET_FAILED = 0x0B  # gateway target device failed to respond
MBAP = struct.Struct(">HHHB")  # transaction, protocol, length, unit
UPSTREAM_TIMEOUT_S = 3.0

log = logging.getLogger("proxy")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(transaction, unit, pdu) of the next frame. readexactly copes with partial reads."""
    transaction, protocol, length, unit = MBAP.unpack(await reader.readexactly(MBAP.size))
    if protocol != 0 or not 2 <= length <= 254:
        raise ValueError(f"not Modbus TCP (protocol {protocol}, length {length})")
    return transaction, unit, await reader.readexactly(length - 1)


def frame(transaction: int, unit: int, pdu: bytes) -> bytes:
    return MBAP.pack(transaction, 0, len(pdu) + 1, unit) + pdu


def exception(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


class Upstream:
    """One connection to the PLC shared by every client; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.transaction = 0
        self.lock = asyncio.Lock()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, unit: int, pdu: bytes) -> bytes:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            log.info("connected to the PLC at %s:%d", self.host, self.port)
        self.transaction = (self.transaction + 1) % 0x10000
        self.writer.write(frame(self.transaction, unit, pdu))
        await self.writer.drain()
        while True:
            transaction, _, reply = await read_frame(self.reader)
            if transaction == self.transaction:  # skip a late answer to a timed-out request
                return reply

    async def ask(self, unit: int, pdu: bytes) -> bytes:
        """The PLC's answer to pdu; reconnects once when the link was lost."""
        async with self.lock:
            for _ in range(2):
                try:
                    async with asyncio.timeout(UPSTREAM_TIMEOUT_S):
                        return await self.exchange(unit, pdu)
                except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    log.warning("PLC link: %s", str(exc) or type(exc).__name__)
                    self.close()
            return exception(pdu[0], TARGET_FAILED)


async def serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream
) -> None:
    peer = writer.get_extra_info("peername")
    try:
        while True:
            transaction, unit, pdu = await read_frame(reader)
            function = pdu[0]
            if function in READ_FUNCTIONS:
                reply = await upstream.ask(unit, pdu)
            else:
                log.warning("refused function %d from %s", function, peer)
                reply = exception(function, ILLEGAL_FUNCTION)
            writer.write(frame(transaction, unit, reply))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass  # the client left, or sent something that is not Modbus TCP
    finally:
        writer.close()


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    upstream = Upstream(os.environ["IIOTLAB_MODBUS_HOST"], int(os.environ["IIOTLAB_MODBUS_PORT"]))
    port = int(os.environ.get("IIOTLAB_PROXY_PORT", "5021"))
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, upstream), "127.0.0.1", port
    )
    log.info("protecting proxy on 127.0.0.1:%d -> PLC %s:%d", port, upstream.host, upstream.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
