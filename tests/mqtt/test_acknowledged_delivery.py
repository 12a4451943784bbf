"""A QoS 1 message the broker acknowledged reaches the subscribers, even when its
publisher disconnects right after the last PUBACK (issue #12).

amqtt 0.12 acknowledges a PUBLISH as soon as it is queued for its client loop, and
dropped whatever was still queued when the publisher disconnected: up to half of a
2,000-message burst here. Labs grade `seq` contiguity, so every message counts.
"""

from __future__ import annotations

import asyncio

import pytest
from mqtt_helpers import StartBroker, connected, receive

from iiotlab.mqtt import BrokerConfig, MqttClient

pytestmark = pytest.mark.integration

TOTAL = 2000
WINDOW = 200  # publishes in flight at once, as a gateway replaying its buffer does
TOPIC = "iiot/demo/tank-1/telemetry"


def _payload(seq: int, large_every: int, large_size: int) -> bytes:
    head = f"{seq}:".encode()
    if large_every and seq % large_every == large_every - 1:
        return head + b"x" * (large_size - len(head))
    return head


async def _publish_all_then_disconnect(
    publisher: MqttClient, large_every: int = 0, large_size: int = 0
) -> None:
    """Every message acknowledged (publish returns on PUBACK), then DISCONNECT at once."""
    for start in range(0, TOTAL, WINDOW):
        await asyncio.gather(
            *(
                publisher.publish(TOPIC, _payload(seq, large_every, large_size), qos=1)
                for seq in range(start, start + WINDOW)
            )
        )
    await publisher.disconnect()


async def _received_seqs(subscriber: MqttClient, count: int) -> list[int]:
    seqs: list[int] = []
    try:
        for _ in range(count):
            message = await receive(subscriber, within=20)
            seqs.append(int(message.payload.split(b":", 1)[0]))
    except TimeoutError:
        pass  # the assertion below names what is missing
    return seqs


def _describe_loss(seqs: list[int], total: int = TOTAL) -> str:
    missing = sorted(set(range(total)) - set(seqs))
    duplicates = len(seqs) - len(set(seqs))
    return (
        f"{len(missing)} of {total} acknowledged messages lost, first ones {missing[:5]}; "
        f"{duplicates} duplicates"
    )


@pytest.mark.parametrize("large", [False, True], ids=["small", "with-large"])
async def test_acknowledged_messages_survive_the_publisher_disconnecting(
    start_broker: StartBroker, large: bool
) -> None:
    config = BrokerConfig()
    # Every 20th message at the broker's size limit (accepted: only larger ones are refused).
    large_every, large_size = (20, config.max_message_bytes or 0) if large else (0, 0)
    async with (
        start_broker(config) as broker,
        connected(broker.url, "platform") as subscriber,
    ):
        await subscriber.subscribe("iiot/demo/#", qos=1)
        publisher = MqttClient(broker.url, client_id="gateway")
        await publisher.connect()
        await _publish_all_then_disconnect(publisher, large_every, large_size)
        seqs = await _received_seqs(subscriber, TOTAL)
    assert sorted(seqs) == list(range(TOTAL)), _describe_loss(seqs)
    assert seqs == sorted(seqs), "delivered out of order"


async def test_a_quick_clean_reconnect_keeps_the_previous_connections_messages(
    start_broker: StartBroker,
) -> None:
    """A gateway restarting at once with the same client id (clean session): amqtt
    discards the old session's queue on a clean connect."""
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "platform") as subscriber,
    ):
        await subscriber.subscribe("iiot/demo/#", qos=1)
        publisher = MqttClient(broker.url, client_id="gateway")
        await publisher.connect()
        await _publish_all_then_disconnect(publisher)
        async with connected(broker.url, "gateway") as restarted:
            await restarted.publish(TOPIC, f"{TOTAL}:".encode(), qos=1)
        seqs = await _received_seqs(subscriber, TOTAL + 1)
    assert sorted(seqs) == list(range(TOTAL + 1)), _describe_loss(seqs, TOTAL + 1)


async def test_an_offline_persistent_session_queues_past_mosquittos_defaults(
    start_broker: StartBroker,
) -> None:
    """Mosquitto's defaults (1,000 queued, 20 in flight) would drop most of these; the
    generated configuration raises both (max_queued_messages, max_inflight_messages)."""
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "watcher") as watcher,
    ):
        await watcher.subscribe("iiot/demo/#", qos=1)
        platform = MqttClient(broker.url, client_id="platform", clean_start=False)
        await platform.connect()
        await platform.subscribe("iiot/demo/#", qos=1)
        await platform.disconnect()

        publisher = MqttClient(broker.url, client_id="gateway")
        await publisher.connect()
        await _publish_all_then_disconnect(publisher)
        # The platform comes back once the broadcast is over: amqtt may reorder (and
        # rarely duplicate) messages still being broadcast while a session reconnects,
        # a separate quirk (docs/mqtt.md).
        assert len(await _received_seqs(watcher, TOTAL)) == TOTAL

        platform = MqttClient(broker.url, client_id="platform", clean_start=False)
        await platform.connect()
        try:
            seqs = await _received_seqs(platform, TOTAL)
        finally:
            await platform.disconnect()
    assert seqs == list(range(TOTAL)), _describe_loss(seqs)
