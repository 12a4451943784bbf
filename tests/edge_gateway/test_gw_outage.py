"""Broker outage: every seq arrives exactly once, replayed ones marked, none lost,
also when the gateway restarts in the middle of the outage.

The gateway reaches the broker through a TcpPath the test cuts at the moment it stops
the broker, and restores once the test's own listener has re-subscribed, so the
listener cannot miss a replayed message that the gateway sent before it was back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import Listener, StartBroker, TcpPath, gateway_config

from edge_gateway.gateway import Gateway
from iiotlab.mqtt import Broker
from simulators.simulation import Simulation, SimulationConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

OUTAGE_S = 10.0


async def begin_outage(
    broker: Broker, path: TcpPath, ears: Listener, gateway: Gateway
) -> tuple[int, int]:
    """Cut when nothing is in flight (the gateway's buffer is empty: every message had its
    PUBACK), then stop the broker. Returns when it cut and the last seq sent before."""
    count = len(ears.payloads("telemetry"))
    await ears.wait_for(lambda: len(ears.payloads("telemetry")) > count, what="fresh telemetry")
    await ears.wait_for(lambda: not len(gateway.buffer), what="nothing awaiting its PUBACK")
    # no await between the check and the abort inside cut(): the gateway cannot send
    cut_ms, last_live_seq = int(time.time() * 1000), gateway.buffer.last_seq
    await path.cut()
    await asyncio.sleep(0.3)  # what the broker already has reaches the listener
    await broker.stop()
    return cut_ms, last_live_seq


async def end_outage(broker: Broker, path: TcpPath, ears: Listener) -> int:
    await broker.start()
    await asyncio.wait_for(ears.online.wait(), 15)
    await path.restore()
    return int(time.time() * 1000)


def check_exactly_once(
    payloads: list[dict[str, Any]], last_seq: int, cut: tuple[int, int], back_ms: int
) -> None:
    cut_ms, last_live_seq = cut
    seqs = [p["seq"] for p in payloads]
    assert sorted(seqs) == list(range(last_seq + 1)), (
        f"missing {sorted(set(range(last_seq + 1)) - set(seqs))}, "
        f"duplicated {sorted({s for s in seqs if seqs.count(s) > 1})}"
    )
    during = [p for p in payloads if cut_ms + 100 < p["ts"] < back_ms]
    assert len(during) >= 10, "the plant kept running, so telemetry was buffered"
    assert all(p["replayed"] for p in during)
    assert not any(p["replayed"] for p in payloads if p["seq"] <= last_live_seq)
    replayed = [p for p in payloads if p["replayed"]]
    assert [p["seq"] for p in replayed] == sorted(p["seq"] for p in replayed), "sent in order"


async def test_broker_outage_loses_nothing(start_broker: StartBroker, tmp_path: Path) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="dave", enable_opcua=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        path = TcpPath(broker.host, broker.port)
        await path.start()
        config = gateway_config(
            sim.datasheets["tank"], f"mqtt://127.0.0.1:{path.port}", tmp_path, heartbeat_s=1.0
        )
        async with Gateway(config) as gateway:
            cut = await begin_outage(broker, path, ears, gateway)
            await asyncio.sleep(OUTAGE_S)
            assert len(gateway.buffer) >= 10
            back_ms = await end_outage(broker, path, ears)
            await ears.wait_for(
                lambda: (
                    not len(gateway.buffer)
                    and len(ears.payloads("telemetry")) > gateway.buffer.last_seq
                ),
                what="the buffer to drain",
            )
            last_seq = gateway.buffer.last_seq
            assert gateway.counters.replayed >= 10 and gateway.counters.reconnects >= 1
        await path.stop()
        await asyncio.sleep(0.3)
        check_exactly_once(ears.payloads("telemetry"), last_seq, cut, back_ms)
        states = [p["state"] for p in ears.payloads("status")]
        assert states[0] == "online" and "offline" in states  # the Last Will, then online
        assert states.count("online") >= 2


async def test_gateway_restart_during_outage(start_broker: StartBroker, tmp_path: Path) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="erin", enable_opcua=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        path = TcpPath(broker.host, broker.port)
        await path.start()
        config = gateway_config(
            sim.datasheets["tank"], f"mqtt://127.0.0.1:{path.port}", tmp_path, heartbeat_s=1.0
        )
        first = Gateway(config)
        await first.start()
        cut = await begin_outage(broker, path, ears, first)
        await asyncio.sleep(OUTAGE_S / 2)
        await first.stop()
        stored = first.buffer.last_seq
        async with Gateway(config) as second:
            assert len(second.buffer) >= 5  # what the first one buffered survived
            await asyncio.sleep(OUTAGE_S / 2)
            assert second.buffer.last_seq > stored  # numbering went on from the first
            back_ms = await end_outage(broker, path, ears)
            await ears.wait_for(
                lambda: (
                    not len(second.buffer)
                    and len(ears.payloads("telemetry")) > second.buffer.last_seq
                ),
                what="the buffer to drain",
            )
            last_seq = second.buffer.last_seq
        await path.stop()
        await asyncio.sleep(0.3)
        check_exactly_once(ears.payloads("telemetry"), last_seq, cut, back_ms)
