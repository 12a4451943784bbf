"""Gateway throughput: Modbus -> MQTT points/s with a large tag map, and buffer drain rate.

    python bench/gateway_throughput.py [--tags 2000] [--seconds 10] [--drain 1000000]

1. A Modbus TCP server (a minimal asyncio one here, so the server costs little CPU) serves
   `--tags` float32 holding registers whose values change on every read. The reference
   Gateway polls them back to back (poll interval 1 ms) and publishes to a broker
   (Mosquitto when installed, else the embedded one). Baseline in the same run: the same
   gateway with `max_registers: 2`, i.e. the naive one-read-per-tag loop.
   Points/s = metric values that reached a subscriber, per second.
2. A store-and-forward buffer filled with `--drain` telemetry messages is drained to the
   broker (PUBACK before delete); the drain is cut at `--drain-seconds` and the rate
   extrapolated when it cannot finish in that time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import tempfile
import time
from pathlib import Path

from edge_gateway.buffer import StoreAndForwardBuffer
from edge_gateway.config import GatewayConfig, ModbusSourceConfig, TagConfig
from edge_gateway.gateway import Gateway
from edge_gateway.metrics import GatewayCounters
from edge_gateway.publisher import TelemetryPublisher
from iiotlab.mqtt import Broker, BrokerConfig, MosquittoBroker, MqttClient, make_broker
from iiotlab.mqtt.mosquitto import find_mosquitto
from iiotlab.payloads import Telemetry, encode_payload


class FastModbusServer:
    """Function 3 over an image of float32 values that move on every read of address 0."""

    def __init__(self, registers: int) -> None:
        self.registers = registers
        self.port = 0
        self._image = b""
        self._cycle = 0
        self._server: asyncio.Server | None = None
        self._refresh()

    def _refresh(self) -> None:
        self._cycle += 1
        count = self.registers // 2
        values = [self._cycle + i / 1000 for i in range(count)]
        self._image = struct.pack(f">{count}f", *values)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(7)
                transaction, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                function, address, count = struct.unpack(">BHH", pdu[:5])
                if function != 3 or address + count > self.registers:
                    body = bytes([function | 0x80, 2])
                else:
                    if address == 0:
                        self._refresh()
                    data = self._image[address * 2 : (address + count) * 2]
                    body = bytes([3, len(data)]) + data
                writer.write(struct.pack(">HHHB", transaction, 0, len(body) + 1, unit) + body)
        writer.close()


def bench_config(tags: int, port: int, url: str, state: Path, *, naive: bool) -> GatewayConfig:
    source = ModbusSourceConfig(
        port=port, unit_id=1, poll_interval_s=0.001, max_registers=2 if naive else 125
    )
    return GatewayConfig(
        tenant="bench",
        device="naive-1" if naive else "coalesced-1",
        sources={"plc": source},
        tags=[
            TagConfig(name=f"t{i}", source="plc", table="holding", address=2 * i, type="float32")
            for i in range(tags)
        ],
        broker={"url": url, "client_id": f"bench-{naive}"},  # type: ignore[arg-type]
        buffer={"path": state / f"{naive}.db"},  # type: ignore[arg-type]
        heartbeat_s=3600,
    )


async def count_points(url: str, topic: str, seconds: float, running: asyncio.Event) -> int:
    points = 0
    async with MqttClient(url, client_id=f"bench-sub-{topic.split('/')[2]}") as client:
        await client.subscribe(topic)
        running.set()
        deadline = time.monotonic() + seconds

        async def consume() -> None:
            nonlocal points
            async for message in client.messages():
                if time.monotonic() < deadline:
                    points += len(json.loads(message.payload)["metrics"])

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consume(), seconds)
    return points


async def points_per_second(
    broker: Broker, tags: int, seconds: float, state: Path, *, naive: bool
) -> tuple[float, GatewayCounters]:
    server = FastModbusServer(tags * 2)
    await server.start()
    config = bench_config(tags, server.port, broker.url, state, naive=naive)
    subscribed = asyncio.Event()
    counter = asyncio.create_task(
        count_points(broker.url, f"iiot/bench/{config.device}/telemetry", seconds + 1, subscribed)
    )
    await subscribed.wait()
    async with Gateway(config) as gateway:
        await asyncio.sleep(1.0)  # warm-up: connections, first full report
        start_read = gateway.counters.read
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        read = gateway.counters.read - start_read
        counters = gateway.counters
    points = await counter
    await server.stop()
    print(
        f"  {'naive one-read-per-tag' if naive else 'coalesced reads':24s} "
        f"read {read / elapsed:10,.0f} points/s   delivered ~{points / (seconds + 1):10,.0f} "
        f"points/s   ({len(gateway.sources['plc'].read_blocks)} requests per cycle)"  # type: ignore[attr-defined]
    )
    return read / elapsed, counters


async def drain_rate(broker: Broker, messages: int, limit_s: float, state: Path) -> None:
    buffer = StoreAndForwardBuffer(state / "drain.db", capacity=messages + 1)
    buffer.open()
    payload = encode_payload(
        Telemetry(v=1, device="drain-1", seq=0, ts=1, metrics={"level": 1.25, "on": True})
    )
    started = time.monotonic()
    batch = [("iiot/bench/drain-1/telemetry", payload)] * 10_000
    for _ in range(messages // len(batch)):
        buffer.append_many(batch, replayed=True)
    fill_s = time.monotonic() - started
    print(f"  filled {len(buffer):,} messages in {fill_s:.1f} s ({len(buffer) / fill_s:,.0f}/s)")
    client = MqttClient(broker.url, client_id="bench-drain")
    await client.connect()
    counters = GatewayCounters()
    publisher = TelemetryPublisher(
        client, buffer, tenant="bench", device="drain-1", counters=counters, inflight=1000
    )
    sender = asyncio.create_task(publisher.run())
    started = time.monotonic()
    publisher.wake()
    finished = await publisher.drained(limit_s)
    elapsed = time.monotonic() - started
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    await client.disconnect()
    rate = counters.published / elapsed
    note = (
        ""
        if finished
        else f" (cut at {limit_s:.0f} s; all {messages:,} would take ~{messages / rate:,.0f} s)"
    )
    print(
        f"  drained {counters.published:,} messages in {elapsed:.1f} s: "
        f"{rate:,.0f} messages/s{note}"
    )
    buffer.close()


class NoDelayMosquitto(MosquittoBroker):
    """Mosquitto with `set_tcp_nodelay true`: without it, Nagle's algorithm on the
    broker's small PUBACKs meets the client's delayed ACKs and stalls each window ~40 ms."""

    def config_text(self, directory: Path) -> str:
        return super().config_text(directory) + "set_tcp_nodelay true\n"


async def main(args: argparse.Namespace) -> None:
    kind = "mosquitto" if find_mosquitto() else "embedded"
    print(f"broker: {kind}; {args.tags} float32 tags; {args.seconds} s per run")
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        async with make_broker(kind, BrokerConfig()) as broker:  # type: ignore[arg-type]
            print("1. Modbus -> MQTT")
            naive, _ = await points_per_second(broker, args.tags, args.seconds, state, naive=True)
            fast, _ = await points_per_second(broker, args.tags, args.seconds, state, naive=False)
            print(f"  coalescing speed-up: x{fast / naive:.1f} (target 50,000 points/s)")
            print(f"2. store-and-forward drain ({kind}, stock config)")
            await drain_rate(broker, args.drain, args.drain_seconds / 4, state / "a")
        if kind == "mosquitto":
            print("   store-and-forward drain (mosquitto with set_tcp_nodelay true)")
            async with NoDelayMosquitto(BrokerConfig()) as broker:
                await drain_rate(broker, args.drain, args.drain_seconds, state / "b")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=int, default=1_000_000)
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    asyncio.run(main(parser.parse_args()))
