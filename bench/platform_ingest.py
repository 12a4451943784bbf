"""Platform ingestion from a queued stream: points/s stored in SQLite beside the rate a bare
subscriber drains the same queue, measured in the same run.

The baseline is a ceiling: the broker holds the whole stream before anyone reads it, so
neither reader is paced by the producer. For each reader a persistent session (clean
session off) subscribes to `iiot/#` and disconnects; a producer process publishes N
telemetry messages (QoS 1, M metrics each, over D devices), which the broker queues for
it. Then the reader connects again and the clock runs from its start until the last
message is received (bare: counted, not decoded) or stored (the platform: validation,
duplicate detection, rules, batched SQLite writes).
Targets: platform >= half the bare rate, and >= 100,000 points/s.

Both are measured in alternating rounds (default 3) and the medians are reported: on a
shared 2-core VM one run of either swings by a factor of up to 1.8.

Run: python bench/platform_ingest.py [--broker mosquitto|embedded] [--messages N]
[--rounds R] [--quick]
Mosquitto as iiotlab configures it queues up to 100,000 messages per session.
Bounded: each phase stops after 90 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iiot_platform.service import PlatformService
from iiot_platform.settings import PlatformSettings
from iiotlab.mqtt import BrokerConfig, MqttClient, make_broker
from iiotlab.mqtt.mosquitto import find_mosquitto

PHASE_LIMIT_S = 90.0


async def produce(url: str, messages: int, metrics: int, devices: int, window: int) -> None:
    """Publish the stream; at most `window` publishes await their PUBACK at once."""
    client = MqttClient(url, client_id="bench-producer")
    await client.connect()
    names = [f"m{i:02d}" for i in range(metrics)]
    start_ts = int(time.time() * 1000)
    pending: set[asyncio.Task[None]] = set()
    for index in range(messages):
        device = f"dev-{index % devices}"
        seq = index // devices
        body = {
            "v": 1,
            "device": device,
            "seq": seq,
            "ts": start_ts + seq,
            "metrics": {name: seq * 0.5 + k for k, name in enumerate(names)},
        }
        topic = f"iiot/bench/{device}/telemetry"
        pending.add(asyncio.create_task(client.publish(topic, json.dumps(body).encode())))
        if len(pending) >= window:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)
    await client.disconnect()


def start_producer(url: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        __file__,
        "--produce",
        url,
        "--messages",
        str(args.messages),
        "--metrics",
        str(args.metrics),
        "--devices",
        str(args.devices),
    ]
    return subprocess.Popen(command)


async def queue_for(url: str, client_id: str, args: argparse.Namespace) -> None:
    """A persistent session subscribes and leaves; the stream is then queued for it."""
    client = MqttClient(url, client_id=client_id, clean_start=False)
    await client.connect()
    await client.subscribe("iiot/#", qos=1)
    await client.disconnect()
    producer = start_producer(url, args)
    if producer.wait() != 0:
        raise SystemExit("the producer failed")


async def bare_phase(url: str, args: argparse.Namespace) -> float:
    await queue_for(url, "bench-bare", args)
    client = MqttClient(url, client_id="bench-bare", clean_start=False, max_inflight=1000)
    started = time.perf_counter()
    await client.connect()
    received = 0
    try:
        async with asyncio.timeout(PHASE_LIMIT_S):
            async for _ in client.messages():
                received += 1
                if received == args.messages:
                    break
    except TimeoutError:
        print(f"  bare: {received}/{args.messages} received within {PHASE_LIMIT_S:g} s")
    finally:
        elapsed = time.perf_counter() - started
        await client.disconnect()
    return received * args.metrics / elapsed


async def platform_phase(url: str, args: argparse.Namespace, data_dir: Path) -> tuple[float, int]:
    settings = PlatformSettings(
        broker_url=url,
        data_dir=data_dir,
        client_id="bench-platform",
        mqtt_persistent_session=True,
        # one tenant sends everything here: the per-tenant rate limit is not under test
        ingest_rate_per_tenant=1e9,
        ingest_burst_per_tenant=10**9,
    )
    await queue_for(url, "bench-platform", args)
    expected = args.messages * args.metrics
    started = time.perf_counter()
    async with PlatformService(settings) as service:
        deadline = started + PHASE_LIMIT_S
        while service.ingestor.stats.points_stored < expected:
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stats = service.ingestor.stats
        stored, batches = stats.points_stored, stats.batches
        counted = sum([await service.store.count("bench", f"dev-{d}") for d in range(args.devices)])
    assert counted == stored, (counted, stored)
    print(f"  platform: {stored} points stored in {batches} batches")
    return stored / elapsed, stored


async def main(args: argparse.Namespace) -> None:
    kind = args.broker
    if kind == "mosquitto" and find_mosquitto() is None:
        print("mosquitto is not installed; using the embedded broker")
        kind = "embedded"
    async with make_broker(kind, BrokerConfig()) as broker:
        print(
            f"broker: {kind} at {broker.url}; {args.messages} messages x {args.metrics} "
            f"metrics over {args.devices} devices, queued before each reader starts"
        )
        bares, rates, ratios = [], [], []
        total = args.messages * args.metrics
        for round_ in range(1, args.rounds + 1):  # alternating: both see the same machine
            bare = await bare_phase(broker.url, args)
            print(
                f"  round {round_}: bare subscriber {bare:,.0f} points/s "
                f"({bare / args.metrics:,.0f} msg/s)"
            )
            with tempfile.TemporaryDirectory() as folder:
                rate, stored = await platform_phase(broker.url, args, Path(folder))
            print(
                f"  round {round_}: platform -> SQLite {rate:,.0f} points/s "
                f"({rate / args.metrics:,.0f} msg/s), {stored}/{total} stored; "
                f"ratio {rate / bare:.2f}"
            )
            bares.append(bare)
            rates.append(rate)
            ratios.append(rate / bare)
    bare, rate = statistics.median(bares), statistics.median(rates)
    print(
        f"median of {args.rounds}: bare subscriber {bare:,.0f} points/s, platform -> SQLite "
        f"{rate:,.0f} points/s; median ratio platform/bare {statistics.median(ratios):.2f} "
        f"(target >= 0.5); absolute target 100,000 points/s: "
        f"{'met' if rate >= 100_000 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "platform_ingest",
                "figures": {"platform_points_per_s": round(rate)},
                "baselines": {"bare_subscriber_points_per_s": round(bare)},
            }
        )
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--quick", action="store_true", help="5,000 messages, one round")
    parser.add_argument("--produce", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 5_000, 1
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.produce:
        asyncio.run(
            produce(
                arguments.produce,
                arguments.messages,
                arguments.metrics,
                arguments.devices,
                window=1000,
            )
        )
    else:
        asyncio.run(main(arguments))
