"""Gateway throughput against a real peer, and the store-and-forward drain.

    sh bench/setup_peers.sh          # once: Node-RED + node-red-contrib-modbus (npm)
    python bench/gateway_throughput.py [--tags 200 2000] [--seconds 5] [--rounds 3]

1. Modbus -> MQTT. One stamped Modbus server (bench/stamped_modbus_server.py, its own
   process) serves `--tags` float32 holding registers whose values change on every read;
   one Mosquitto (set_tcp_nodelay) takes QoS 1 telemetry. Rows, run one after the other
   and alternated over `--rounds` rounds, each against the same server and broker:
   - the reference gateway (`iiotlab gateway run`), pipelined (`pipeline: 8`);
   - the reference gateway reading one block at a time (`pipeline: 1`, the default);
   - Node-RED 5 + node-red-contrib-modbus, pipelined flow (bench/node_red_peer.py);
   - Node-RED, serial flow (one block read at a time).
   Each row: points/s at a subscriber, points per CPU-second of the gateway's process,
   cycle and latency from the server's stamp to the subscriber (bench/peer_rows.py).
   Medians over the rounds. Without bench/peers the Node-RED rows are skipped, saying why.
2. Store-and-forward drain of `--drain` buffered messages to Mosquitto, beside a bare
   paho QoS 1 publisher (same broker, same run, same window): the ceiling.

Ends with one JSON line: {"bench": "gateway_throughput", "figures": ..., "baselines": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node_red_peer import Block, flow, missing_peer, start_node_red
from peer_rows import RowFigures, gateway_config_text, measure_row, start_gateway

from edge_gateway.buffer import StoreAndForwardBuffer
from edge_gateway.config import BrokerConfig as GatewayBrokerConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.publisher import TelemetryPublisher, make_client
from iiotlab.mqtt import Broker, BrokerConfig, MosquittoBroker
from iiotlab.payloads import Telemetry, encode_payload

HERE = Path(__file__).resolve().parent
ROWS = ("gateway pipelined", "gateway one-at-a-time", "node-red pipelined", "node-red serial")


def blocks_of(tags: int) -> list[Block]:
    """The blocks the reference gateway plans for `tags` float32 tags (62 per read)."""
    registers = 2 * tags
    return [Block(start, min(124, registers - start)) for start in range(0, registers, 124)]


async def run_row(
    name: str, tags: int, modbus_port: int, broker: Broker, state: Path, seconds: float
) -> RowFigures:
    device = name.replace(" ", "-")
    folder = state / f"{device}-{tags}-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    if name.startswith("gateway"):
        config = folder / "gateway.yaml"
        config.write_text(
            gateway_config_text(
                tags=tags,
                modbus_port=modbus_port,
                broker_url=broker.url,
                device=device,
                pipeline=8 if "pipelined" in name else 1,
                state=folder,
            )
        )
        return await measure_row(
            lambda: start_gateway(config, folder / "gateway.log"),
            broker_url=broker.url,
            device=device,
            tags=tags,
            seconds=seconds,
        )
    blocks = blocks_of(tags)
    pipelined = "pipelined" in name
    # Pipelined: one queue per block (a unit id each; the server, like many Modbus TCP
    # devices, ignores the unit id), so every block is in flight at once. Tried on this
    # machine: 1 connection x 33 queues, 4 x 9 and 8 x 5 give the same rate at 2,000 tags;
    # at 200 tags 1 x 4 beat 4 x 1 and 2 x 2.
    nodes = flow(
        blocks,
        modbus_port=modbus_port,
        mqtt_port=broker.port,
        device=device,
        connections=1,
        pipelined=pipelined,
        unit_ids=len(blocks) if pipelined else 1,
    )
    return await measure_row(
        lambda: start_node_red(folder, nodes),
        broker_url=broker.url,
        device=device,
        tags=tags,
        seconds=seconds,
    )


def start_server(registers: int) -> tuple[subprocess.Popen[bytes], int]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "stamped_modbus_server.py"), "--registers", str(registers)],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline().split()[1])


async def throughput(args: argparse.Namespace, broker: Broker, state: Path) -> dict[str, float]:
    rows = [row for row in ROWS if any(row.startswith(wanted) for wanted in args.rows)]
    why = missing_peer()
    if why is not None:
        print(f"  Node-RED rows skipped: {why}")
        rows = [row for row in rows if not row.startswith("node-red")]
    figures: dict[str, float] = {}
    for tags in args.tags:
        server, port = start_server(2 * tags)
        results: dict[str, list[RowFigures]] = {row: [] for row in rows}
        try:
            for round_index in range(args.rounds):
                order = rows if round_index % 2 == 0 else rows[::-1]
                for row in order:
                    result = await run_row(row, tags, port, broker, state, args.seconds)
                    results[row].append(result)
                    print(f"    round {round_index + 1} {tags:5d} tags  {_line(row, result)}")
        finally:
            server.terminate()
            server.wait()
        print(f"  {tags} float32 tags ({len(blocks_of(tags))} blocks), medians of {args.rounds}:")
        medians = {row: _median(results[row]) for row in rows}
        for row in rows:
            print(f"    {_line(row, medians[row])}")
        ours = medians["gateway pipelined"]
        figures[f"points_per_s_{tags}"] = ours.points_per_s
        figures[f"points_per_cpu_s_{tags}"] = ours.points_per_cpu_s
        figures[f"latency_p50_ms_{tags}"] = ours.latency_p50_ms
        if "node-red pipelined" in medians:
            peer = medians["node-red pipelined"]
            figures[f"node_red_points_per_s_{tags}"] = peer.points_per_s
            figures[f"node_red_points_per_cpu_s_{tags}"] = peer.points_per_cpu_s
            figures[f"node_red_latency_p50_ms_{tags}"] = peer.latency_p50_ms
            rate = ours.points_per_s / peer.points_per_s
            per_cpu = ours.points_per_cpu_s / peer.points_per_cpu_s
            print(
                f"    gateway / node-red pipelined: points/s x{rate:.2f}, per CPU-second "
                f"x{per_cpu:.2f}, latency p50 {ours.latency_p50_ms:.1f} against "
                f"{peer.latency_p50_ms:.1f} ms"
            )
    return figures


def _median(rows: list[RowFigures]) -> RowFigures:
    def pick(field: Callable[[RowFigures], float]) -> float:
        return statistics.median(field(row) for row in rows)

    return RowFigures(
        points_per_s=pick(lambda row: row.points_per_s),
        points_per_cpu_s=pick(lambda row: row.points_per_cpu_s),
        cycle_ms=pick(lambda row: row.cycle_ms),
        latency_p50_ms=pick(lambda row: row.latency_p50_ms),
        latency_p95_ms=pick(lambda row: row.latency_p95_ms),
    )


def _line(row: str, figures: RowFigures) -> str:
    return (
        f"{row:22s} {figures.points_per_s:9,.0f} points/s {figures.points_per_cpu_s:9,.0f} "
        f"per CPU-s  cycle {figures.cycle_ms:6.2f} ms  latency p50 {figures.latency_p50_ms:6.1f} "
        f"p95 {figures.latency_p95_ms:6.1f} ms"
    )


DRAIN_TOPIC = "iiot/bench/drain-1/telemetry"
DRAIN_WINDOW = 1000  # the gateway's default broker.inflight


def drain_payload() -> bytes:
    return encode_payload(
        Telemetry(v=1, device="drain-1", seq=0, ts=1, metrics={"level": 1.25, "on": True})
    )


async def drain_rate(broker: Broker, messages: int, state: Path) -> float:
    """Messages/s of a TelemetryPublisher emptying a buffer of `messages` (PUBACK, then
    delete); the fill is not timed."""
    path = state / f"drain-{time.monotonic_ns()}.db"
    buffer = StoreAndForwardBuffer(path, capacity=messages + 1)
    buffer.open()
    batch = [(DRAIN_TOPIC, drain_payload())] * 10_000
    for _ in range(messages // len(batch)):
        buffer.append_many(batch, replayed=True)
    client = make_client(
        GatewayBrokerConfig(url=broker.url, client_id="bench-drain"),
        tenant="bench",
        device="drain-1",
    )
    await client.connect()
    counters = GatewayCounters()
    publisher = TelemetryPublisher(
        client, buffer, tenant="bench", device="drain-1", counters=counters, inflight=DRAIN_WINDOW
    )
    sender = asyncio.create_task(publisher.run())
    started = time.monotonic()
    publisher.wake()
    finished = await publisher.drained(600)
    elapsed = time.monotonic() - started
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    await client.disconnect()
    left = len(buffer)
    buffer.close()
    path.unlink()
    assert finished and left == 0, f"drain left {left} messages"
    return counters.published / elapsed


def bare_paho_rate(host: str, port: int, messages: int, window: int = DRAIN_WINDOW) -> float:
    """A bare paho QoS 1 publisher with `DRAIN_WINDOW` in flight, on one thread (its
    network loop publishes the next message from the PUBACK callback): the ceiling."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv311
    )
    client.max_inflight_messages_set(0)  # unbounded in paho: the window is ours
    payload = drain_payload()
    sent = [0]
    acknowledged = [0]

    def publish_next() -> None:
        if sent[0] < messages:
            sent[0] += 1
            client.publish(DRAIN_TOPIC, payload, qos=1)

    def on_publish(*_: object) -> None:
        acknowledged[0] += 1
        publish_next()

    client.on_publish = on_publish
    client.connect(host, port)
    while not client.is_connected():
        client.loop(0.1)
    started = time.monotonic()
    for _ in range(window):
        publish_next()
    while acknowledged[0] < messages and time.monotonic() - started < 600:
        client.loop(0.1)
    elapsed = time.monotonic() - started
    client.disconnect()
    return acknowledged[0] / elapsed


async def drain_rounds(
    broker: Broker, args: argparse.Namespace, state: Path
) -> tuple[float, float]:
    """Alternating bare paho and our drain; medians."""
    drains: list[float] = []
    bares: list[float] = []
    host, port = "127.0.0.1", broker.port
    for round_index in range(args.drain_rounds):
        steps = ["bare", "drain"] if round_index % 2 == 0 else ["drain", "bare"]
        for step in steps:
            if step == "bare":
                bares.append(await asyncio.to_thread(bare_paho_rate, host, port, args.drain))
                print(
                    f"    round {round_index + 1} bare paho QoS 1 publisher {bares[-1]:9,.0f} msg/s"
                )
            else:
                drains.append(await drain_rate(broker, args.drain, state))
                print(
                    f"    round {round_index + 1} store-and-forward drain "
                    f"  {drains[-1]:9,.0f} msg/s"
                )
    drain, bare = statistics.median(drains), statistics.median(bares)
    print(
        f"  medians: drain {drain:,.0f} msg/s, bare paho {bare:,.0f} msg/s "
        f"(x{drain / bare:.2f}; target 20,000 msg/s and x0.5)"
    )
    return drain, bare


class NoDelayMosquitto(MosquittoBroker):
    """Mosquitto with `set_tcp_nodelay true`: without it, Nagle's algorithm on the
    broker's small PUBACKs meets the client's delayed ACKs and stalls each window ~40 ms."""

    def config_text(self, directory: Path) -> str:
        return super().config_text(directory) + "set_tcp_nodelay true\n"


async def main(args: argparse.Namespace) -> None:
    print(f"tags {args.tags}; {args.seconds} s per row; {args.rounds} rounds; broker Mosquitto")
    figures: dict[str, float] = {}
    baselines: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        async with NoDelayMosquitto(BrokerConfig()) as broker:
            if not args.skip_throughput:
                print("1. Modbus -> MQTT (QoS 1)")
                found = await throughput(args, broker, state)
                for key, value in found.items():
                    (baselines if key.startswith("node_red") else figures)[key] = value
            if args.drain:
                print(f"2. store-and-forward drain of {args.drain:,} messages")
                drain, bare = await drain_rounds(broker, args, state)
                figures["drain_msgs_per_s"] = drain
                baselines["bare_publish_msgs_per_s"] = bare
    for tags in args.tags:
        if f"points_per_s_{tags}" in figures:
            figures.setdefault("points_per_s", figures[f"points_per_s_{tags}"])
        if f"node_red_points_per_s_{tags}" in baselines:
            baselines.setdefault(
                "node_red_points_per_s", baselines[f"node_red_points_per_s_{tags}"]
            )
    print(json.dumps({"bench": "gateway_throughput", "figures": figures, "baselines": baselines}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tags", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drain", type=int, default=200_000)
    parser.add_argument("--drain-rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="rows to run (prefixes)")
    asyncio.run(main(parser.parse_args()))
