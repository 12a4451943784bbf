"""Clients subscribing while a QoS 1 burst is broadcast lose nothing for the others.

amqtt 0.12 iterated its subscription table across awaits: a new subscription during a
broadcast raised inside the broadcast task and dropped that message for everyone after
(seen under `iiotlab up`). The live test does not reproduce that timing reliably, so the
table's snapshot iteration is also tested directly.
"""

from __future__ import annotations

import asyncio

import pytest
from mqtt_helpers import StartBroker, connected, receive

from iiotlab.mqtt import BrokerConfig, MqttClient
from iiotlab.mqtt.embedded import _SnapshotDict

pytestmark = pytest.mark.integration


async def test_subscriptions_during_a_burst_lose_nothing(start_broker: StartBroker) -> None:
    total = 600
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "steady") as steady,
        connected(broker.url, "pub") as publisher,
    ):
        await steady.subscribe("iiot/demo/#", qos=1)
        joiners = [MqttClient(broker.url, client_id=f"joiner-{n}") for n in range(12)]
        await asyncio.gather(*(joiner.connect() for joiner in joiners))

        async def join_while_publishing() -> None:
            for round_ in range(4):
                for n, joiner in enumerate(joiners):
                    await joiner.subscribe(f"iiot/demo/dev-{n}/r{round_}/#", qos=1)
                await asyncio.sleep(0)

        async def burst() -> None:
            for start in range(0, total, 100):
                await asyncio.gather(
                    *(
                        publisher.publish(f"iiot/demo/dev-{seq % 12}/telemetry", str(seq).encode())
                        for seq in range(start, start + 100)
                    )
                )

        try:
            await asyncio.gather(join_while_publishing(), burst())
            got = {(await receive(steady, within=20)).payload for _ in range(total)}
        finally:
            await asyncio.gather(*(joiner.disconnect() for joiner in joiners))
    assert got == {str(seq).encode() for seq in range(total)}


def test_subscription_table_iterates_a_snapshot() -> None:
    table = _SnapshotDict({"a/#": [], "b/#": []})
    seen = []
    for key, _subscriptions in table.items():
        table[f"{key}/new"] = []
        seen.append(key)
    for key in table:
        del table[key]
    assert seen == ["a/#", "b/#"]
    assert table == {}
