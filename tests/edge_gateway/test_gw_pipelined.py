"""Pipelined Modbus reads and whole-block decoding.

- BlockDecoder gives exactly what decode_block gives, tag by tag, for any layout.
- A ModbusSource with `pipeline: 8` keeps up to 8 reads in flight (never more) against a
  real loopback server that answers every request it finds in a segment, reads every
  tag right, and marks only the tags of a refused block bad.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_gateway.codec import BlockDecoder, decode_block, read_item
from edge_gateway.config import ModbusSourceConfig, TagConfig
from edge_gateway.planner import plan_reads
from edge_gateway.sources.base import SourceCycle
from edge_gateway.sources.modbus import ModbusSource

TYPES = ("int16", "uint16", "int32", "uint32", "float32", "float64", "bool", "bits16", "string")


@st.composite
def layouts(draw: st.DrawFn) -> list[TagConfig]:
    tags: list[TagConfig] = []
    address = draw(st.integers(0, 10))
    for index in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(TYPES))
        extra: dict[str, object] = {}
        if kind in ("int32", "uint32", "float32", "float64"):
            extra["word_order"] = draw(st.sampled_from(("ABCD", "CDAB", "BADC", "DCBA")))
        if kind not in ("bool", "bits16", "string") and draw(st.booleans()):
            extra["scale"] = draw(st.sampled_from((0.1, 2.0, -1.0)))
            extra["offset"] = draw(st.sampled_from((0.0, 5.0)))
        if kind == "bits16":
            extra["bit"] = draw(st.integers(0, 15))
        if kind == "string":
            extra["length"] = draw(st.integers(1, 4))
        tag = TagConfig(
            name=f"t{index}", source="plc", table="holding", address=address, type=kind, **extra
        )  # type: ignore[arg-type]
        tags.append(tag)
        overlap = kind == "bits16" and draw(st.booleans())  # bits of one status word
        address += 0 if overlap else read_item(tag).count + draw(st.integers(0, 2))
    return tags


def same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    return type(left) is type(right) and left == right


@settings(max_examples=200, deadline=None)
@given(tags=layouts(), seed=st.randoms(use_true_random=False))
def test_block_decoder_matches_tag_by_tag_decoding(tags: list[TagConfig], seed: object) -> None:
    by_name = {tag.name: tag for tag in tags}
    for block in plan_reads((read_item(tag) for tag in tags), max_gap=3):
        words = [seed.randrange(0x10000) for _ in range(block.count)]  # type: ignore[attr-defined]
        data = struct.pack(f">{len(words)}H", *words)
        expected = decode_block(block, words, by_name)
        decoded = BlockDecoder(block, by_name).decode(data)
        assert decoded.keys() == expected.keys()
        for name in expected:
            assert same(decoded[name], expected[name]), (name, decoded[name], expected[name])


def test_block_decoder_reads_coils() -> None:
    tags = {
        f"c{i}": TagConfig(name=f"c{i}", source="plc", table="coil", address=3 + 2 * i, type="bool")
        for i in range(10)
    }
    (block,) = plan_reads((read_item(tag) for tag in tags.values()), max_gap=1)
    bits = [i % 3 == 0 for i in range(block.count)]
    data = bytes(
        sum(1 << j for j in range(8) if i * 8 + j < len(bits) and bits[i * 8 + j])
        for i in range((len(bits) + 7) // 8)
    )
    assert BlockDecoder(block, tags).decode(data) == decode_block(block, bits, tags)


class PipelinedServer:
    """Function 3 over float32 registers (value = register pair index); answers every
    request found in a segment; records the most requests it saw unanswered at once.
    Reads at `refused` answer exception 02."""

    def __init__(self, registers: int, refused: int | None = None) -> None:
        self.registers = registers
        self.refused = refused
        self.most_outstanding = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._image = struct.pack(f">{registers // 2}f", *range(registers // 2))

    async def __aenter__(self) -> PipelinedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        buffer = b""
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                buffer += data
                frames = []
                while len(buffer) >= 7 and len(buffer) >= 6 + struct.unpack(">H", buffer[4:6])[0]:
                    length = struct.unpack(">H", buffer[4:6])[0]
                    frames.append(buffer[: 6 + length])
                    buffer = buffer[6 + length :]
                self.most_outstanding = max(self.most_outstanding, len(frames))
                await asyncio.sleep(0.002)  # let the client queue more behind these
                writer.write(b"".join(self._answer(frame) for frame in frames))
        writer.close()

    def _answer(self, frame: bytes) -> bytes:
        transaction, _, _, unit, function, address, count = struct.unpack(">HHHBBHH", frame[:12])
        if address == self.refused:
            body = bytes([function | 0x80, 2])
        else:
            body = bytes([3, 2 * count]) + self._image[2 * address : 2 * (address + count)]
        return struct.pack(">HHHB", transaction, 0, len(body) + 1, unit) + body


def float_tags(count: int) -> list[TagConfig]:
    return [
        TagConfig(name=f"t{i}", source="plc", table="holding", address=2 * i, type="float32")
        for i in range(count)
    ]


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_pipelined_poll_reads_every_tag_with_a_bounded_window() -> None:
    tags = float_tags(2000)
    cycles: asyncio.Queue[SourceCycle] = asyncio.Queue()
    async with PipelinedServer(4000) as server:
        config = ModbusSourceConfig(port=server.port, timeout_s=2.0, pipeline=8, poll_interval_s=60)
        source = ModbusSource("plc", config, tags, sink=cycles.put_nowait)
        await source.start()  # polls once now, then in a minute
        try:
            cycle = await asyncio.wait_for(cycles.get(), 10)
        finally:
            await source.stop()
    assert len(source.read_blocks) == 33
    assert cycle.values == {f"t{i}": float(i) for i in range(2000)}
    assert 1 < server.most_outstanding <= 8


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_a_refused_block_marks_only_its_tags_bad() -> None:
    tags = float_tags(200)
    cycles: asyncio.Queue[SourceCycle] = asyncio.Queue()
    async with PipelinedServer(400, refused=124) as server:
        config = ModbusSourceConfig(
            port=server.port, timeout_s=2.0, pipeline=4, poll_interval_s=0.05
        )
        source = ModbusSource("plc", config, tags, sink=cycles.put_nowait)
        await source.start()
        try:
            cycle = await asyncio.wait_for(cycles.get(), 10)
            again = await asyncio.wait_for(cycles.get(), 10)  # the connection stays up
        finally:
            await source.stop()
    bad = {name for name, value in cycle.values.items() if value is None}
    assert bad == {f"t{i}" for i in range(62, 124)}
    assert again.values == cycle.values


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_a_device_that_stops_answering_times_out_and_reconnects() -> None:
    """Requests in flight fail together after `timeout_s`; the tags go bad, the source
    closes the connection and opens a new one (with backoff)."""
    accepted: list[asyncio.StreamWriter] = []
    received: list[int] = []  # bytes of requests, per connection

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        received.append(0)
        index = len(received) - 1
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received[index] += len(chunk)  # reads the requests, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    cycles: asyncio.Queue[SourceCycle] = asyncio.Queue()
    config = ModbusSourceConfig(
        port=server.sockets[0].getsockname()[1],
        timeout_s=0.3,
        pipeline=8,
        poll_interval_s=0.05,
        reconnect_max_s=0.5,
    )
    source = ModbusSource("plc", config, float_tags(2000), sink=cycles.put_nowait)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await source.start()
    try:
        cycle = await asyncio.wait_for(cycles.get(), 10)
        assert loop.time() - started > 0.25
        # one timeout for the whole window: the first connection got the 8 requests in
        # flight (12 bytes each) and no more, not the next blocks one timeout at a time
        assert received[0] == 8 * 12, received
        assert set(cycle.values.values()) == {None}
        assert not source.connected
        for _ in range(40):
            if len(accepted) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(accepted) >= 2, "the source did not reconnect"
    finally:
        await source.stop()
        for writer in accepted:
            writer.close()
        server.close()
