"""A Modbus TCP server for the gateway bench, run as its own process.

    python bench/stamped_modbus_server.py --registers 4000   # prints "port N", serves

Function 3 (read holding registers) over `--registers` registers holding float32 values
(ABCD). Every answer stamps its values with the time it was served: tag k of a block
reads `stamp + (k % 8) / 8`, where `stamp` counts 0.1 ms ticks of CLOCK_MONOTONIC modulo
2**20 (float32 holds it exactly). So every read of a block returns new values (report
by exception sends them all), and a subscriber on the same machine turns any value back
into its sampling time: latency from sample to subscriber, measured the same way for
every gateway, without trusting what a gateway says about its own timestamps.

An asyncio Protocol answers every request found in a segment with one write, so
pipelined requests cost the server little; it answers in order, like a PLC does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import time

TICKS_PER_S = 10_000
STAMP_MODULO = 1 << 20
_HEADER = struct.Struct(">HHHB")
_REQUEST = struct.Struct(">BHH")


def stamp_now() -> int:
    return (time.monotonic_ns() // 100_000) % STAMP_MODULO


def latency_s(value: float, now_stamp: int) -> float:
    """Seconds since the server stamped `value` (any float of an answer)."""
    return ((now_stamp - int(value)) % STAMP_MODULO) / TICKS_PER_S


class StampedModbusProtocol(asyncio.Protocol):
    def __init__(self, registers: int, counter: list[int]) -> None:
        self._registers = registers
        self._counter = counter
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._fractions = [(k % 8) / 8 for k in range(64)]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        answers: list[bytes] = []
        while len(buffer) >= 7:
            transaction, _, length, unit = _HEADER.unpack_from(buffer)
            if len(buffer) < 6 + length:
                break
            pdu = bytes(buffer[7 : 6 + length])
            del buffer[: 6 + length]
            answers.append(self._answer(transaction, unit, pdu))
        if answers and self._transport is not None:
            self._transport.write(b"".join(answers))

    def _answer(self, transaction: int, unit: int, pdu: bytes) -> bytes:
        function, address, count = _REQUEST.unpack_from(pdu)
        if function != 3 or count > 125 or address + count > self._registers or count % 2:
            body = bytes([function | 0x80, 2])
        else:
            self._counter[0] += 1
            stamp = float(stamp_now())
            values = [stamp + fraction for fraction in self._fractions[: count // 2]]
            body = bytes([3, count * 2]) + struct.pack(f">{count // 2}f", *values)
        return _HEADER.pack(transaction, 0, len(body) + 1, unit) + body


async def serve(registers: int) -> None:
    loop = asyncio.get_running_loop()
    counter = [0]
    server = await loop.create_server(
        lambda: StampedModbusProtocol(registers, counter), "127.0.0.1", 0
    )
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()
    print(f"answered {counter[0]} reads", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registers", type=int, default=4000)
    asyncio.run(serve(parser.parse_args().registers))
