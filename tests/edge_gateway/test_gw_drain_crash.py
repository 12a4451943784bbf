"""A gateway killed (SIGKILL) in the middle of draining a large buffer loses nothing:
what it deleted had been acknowledged and reaches a subscriber, what it had not stays in
the buffer and goes out on the next start. A crash re-sends at most the window of
acknowledged-but-not-yet-deleted messages, each the same message with the same seq."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from gateway_helpers import Listener, StartBroker

from edge_gateway.buffer import StoreAndForwardBuffer
from edge_gateway.config import BrokerConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.publisher import ACK_BATCH, TelemetryPublisher, make_client
from iiotlab.payloads import Telemetry, encode_payload, topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MESSAGES = 6000
INFLIGHT = 200
TOPIC = topic("crash", "drain-1", "telemetry")

# drains, and SIGKILLs itself once a tenth of the buffer is gone: mid-drain however
# fast or slow the machine
DRAINER = """
import asyncio, os, signal, sys
from edge_gateway.buffer import StoreAndForwardBuffer
from edge_gateway.config import BrokerConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.publisher import TelemetryPublisher, make_client

async def main(path, url, inflight):
    buffer = StoreAndForwardBuffer(path)
    buffer.open()
    client = make_client(BrokerConfig(url=url, client_id="drainer"), tenant="crash",
                         device="drain-1")
    await client.connect()
    publisher = TelemetryPublisher(client, buffer, tenant="crash", device="drain-1",
                                   counters=GatewayCounters(), inflight=inflight)
    publisher.wake()
    sender = asyncio.create_task(publisher.run())
    full = len(buffer)
    while len(buffer) > full - full // 10:
        await asyncio.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)
    await sender

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def fill(path: Path) -> None:
    with StoreAndForwardBuffer(path, capacity=MESSAGES + 1) as buffer:
        buffer.append_many(
            (
                (
                    TOPIC,
                    encode_payload(
                        Telemetry(
                            v=1, device="drain-1", seq=seq, ts=1_000 + seq, metrics={"x": seq}
                        )
                    ),
                )
                for seq in range(MESSAGES)
            ),
            replayed=True,
        )


def stored_seqs(path: Path) -> set[int]:
    with StoreAndForwardBuffer(path) as buffer:
        return {
            int(message.payload.split(b'"seq":')[1].split(b",")[0])
            for message in buffer.peek(MESSAGES + 1)
        }


async def test_sigkill_mid_drain_loses_nothing(start_broker: StartBroker, tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    fill(path)
    async with start_broker() as broker, Listener(broker.url) as ears:
        drainer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", DRAINER, str(path), broker.url, str(INFLIGHT)
        )
        try:
            assert await asyncio.wait_for(drainer.wait(), 90) == -signal.SIGKILL
        finally:
            if drainer.returncode is None:
                drainer.kill()
                await drainer.wait()
        left = stored_seqs(path)
        assert 0 < len(left) < MESSAGES, "the kill was meant to land mid-drain"
        # everything the drainer deleted had its PUBACK, so the subscriber gets it
        await ears.wait_for(
            lambda: {p["seq"] for p in ears.payloads("telemetry")} | left == set(range(MESSAGES)),
            15,
            "every deleted message at the subscriber",
        )

        with StoreAndForwardBuffer(path) as buffer:
            client = make_client(
                BrokerConfig(url=broker.url, client_id="restarted"), tenant="crash", device="d"
            )
            await client.connect()
            publisher = TelemetryPublisher(
                client,
                buffer,
                tenant="crash",
                device="drain-1",
                counters=GatewayCounters(),
                inflight=INFLIGHT,
            )
            sender = asyncio.create_task(publisher.run())
            try:
                assert await publisher.drained(60)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                await client.disconnect()
        await ears.wait_for(
            lambda: {p["seq"] for p in ears.payloads("telemetry")} == set(range(MESSAGES)),
            30,
            "every message",
        )
        await asyncio.sleep(0.3)  # a late duplicate still counts

    payloads = ears.payloads("telemetry")
    seqs = [p["seq"] for p in payloads]
    assert set(seqs) == set(range(MESSAGES)), f"lost {sorted(set(range(MESSAGES)) - set(seqs))}"
    repeats = len(seqs) - MESSAGES
    # re-sent: at most what was acknowledged but not yet deleted, plus what was in flight
    assert repeats <= ACK_BATCH + INFLIGHT, f"{repeats} messages sent twice"
    for payload in payloads:
        assert payload["ts"] == 1_000 + payload["seq"] and payload["metrics"] == {
            "x": payload["seq"]
        }
        assert payload["replayed"] is True
