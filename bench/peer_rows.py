"""One row of the gateway bench: a gateway process polling the stamped Modbus server and
publishing to the broker, measured from outside by a subscriber and /proc.

Figures of a row, over the measuring window (after a warm-up):
- points/s: metric values that reached the subscriber, per second;
- points per CPU-second: the same points over the CPU time (user + system, all threads)
  of the gateway's process, so a gateway that burns a core to win on rate does not win;
- cycle: tags x seconds / points, the mean time between two fresh samples of one tag;
- latency p50 / p95: from the moment the Modbus server served a value (it stamps its
  values, see stamped_modbus_server.py) to its arrival at the subscriber (paho's arrival
  time, floored to the millisecond: latencies read up to 1 ms short, alike for all rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stamped_modbus_server import STAMP_MODULO, TICKS_PER_S

from iiotlab.mqtt import MqttClient, MqttMessage

LATENCY_STRIDE = 31  # one value in 31: at least one per block of 62 float32 tags


@dataclass(frozen=True)
class RowFigures:
    points_per_s: float
    points_per_cpu_s: float
    cycle_ms: float
    latency_p50_ms: float
    latency_p95_ms: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tally:
    """Counts points and samples latencies of the messages on one device's topic."""

    def __init__(self) -> None:
        self.measuring = False
        self.first = asyncio.Event()
        self.points = 0
        self.latencies: list[float] = []
        self._offset = time.time() - time.monotonic()

    def add(self, message: MqttMessage) -> None:
        self.first.set()
        if not self.measuring:
            return
        values = list(json.loads(message.payload)["metrics"].values())
        self.points += len(values)
        received = int((message.received_ms / 1000 - self._offset) * TICKS_PER_S)
        for value in values[::LATENCY_STRIDE]:
            ticks = (received - int(value)) % STAMP_MODULO
            if ticks > STAMP_MODULO // 2:  # received_ms is floored to the millisecond
                ticks = 0
            self.latencies.append(ticks / TICKS_PER_S)


async def measure_row(
    start: Callable[[], subprocess.Popen[bytes]],
    *,
    broker_url: str,
    device: str,
    tags: int,
    seconds: float,
    warm_up_s: float = 2.0,
) -> RowFigures:
    """Start a gateway publishing telemetry for `device`, measure it, stop it."""
    tally = Tally()
    async with MqttClient(broker_url, client_id=f"bench-sub-{device}") as client:
        await client.subscribe(f"iiot/bench/{device}/telemetry")

        async def consume() -> None:
            async for message in client.messages():
                tally.add(message)

        consumer = asyncio.create_task(consume())
        process = start()
        try:
            await asyncio.wait_for(tally.first.wait(), 60)
            await asyncio.sleep(warm_up_s)
            cpu_before, started = cpu_seconds(process.pid), time.monotonic()
            tally.measuring = True
            await asyncio.sleep(seconds)
            tally.measuring = False
            cpu = cpu_seconds(process.pid) - cpu_before
            elapsed = time.monotonic() - started
        finally:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    latencies = sorted(tally.latencies) or [float("nan")]
    return RowFigures(
        points_per_s=tally.points / elapsed,
        points_per_cpu_s=tally.points / cpu if cpu else float("nan"),
        cycle_ms=1000 * tags * elapsed / tally.points if tally.points else float("nan"),
        latency_p50_ms=1000 * latencies[len(latencies) // 2],
        latency_p95_ms=1000 * latencies[len(latencies) * 95 // 100],
    )


def start_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """The reference gateway as users run it: `iiotlab gateway run --config FILE`."""
    command = [sys.executable, "-c", "from iiotlab.cli import main; main()"]
    with open(log, "wb") as output:
        return subprocess.Popen(
            [*command, "gateway", "run", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def gateway_config_text(
    *, tags: int, modbus_port: int, broker_url: str, device: str, pipeline: int, state: Path
) -> str:
    config = {
        "tenant": "bench",
        "device": device,
        "sources": {
            "plc": {
                "kind": "modbus",
                "port": modbus_port,
                "unit_id": 1,
                "poll_interval_s": 0.001,
                "pipeline": pipeline,
            }
        },
        "tags": [
            {
                "name": f"t{i}",
                "source": "plc",
                "table": "holding",
                "address": 2 * i,
                "type": "float32",
            }
            for i in range(tags)
        ],
        "broker": {"url": broker_url, "client_id": f"bench-{device}"},
        "buffer": {"path": str(state / f"{device}.db")},
        "heartbeat_s": 3600,
    }
    return json.dumps(config)
