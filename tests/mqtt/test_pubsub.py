"""Publish/subscribe behaviour that gateways and the platform rely on, on every broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from mqtt_helpers import StartBroker, connected, receive, receive_until

from iiotlab.mqtt import BrokerConfig, MqttClient, MqttConnectError, MqttNotConnectedError
from iiotlab.mqtt.broker import pick_free_port

pytestmark = pytest.mark.integration


async def test_qos1_round_trip_keeps_order(start_broker: StartBroker) -> None:
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "sub") as subscriber,
        connected(broker.url, "pub") as publisher,
    ):
        await subscriber.subscribe("iiot/demo/tank-1/#", qos=1)
        for seq in range(50):
            await publisher.publish("iiot/demo/tank-1/telemetry", str(seq).encode(), qos=1)
        received = [await receive(subscriber) for _ in range(50)]

    assert [m.payload for m in received] == [str(seq).encode() for seq in range(50)]
    assert {(m.topic, m.qos, m.retain) for m in received} == {
        ("iiot/demo/tank-1/telemetry", 1, False)
    }
    assert abs(received[-1].received_ms - time.time() * 1000) < 60_000


async def test_retained_status_reaches_late_subscribers(start_broker: StartBroker) -> None:
    status = b'{"v":1,"state":"online","ts":1}'
    async with start_broker(BrokerConfig()) as broker:
        async with connected(broker.url, "gateway") as gateway:
            await gateway.publish("iiot/demo/tank-1/status", status, qos=1, retain=True)
        async with connected(broker.url, "late") as late:
            await late.subscribe("iiot/demo/+/status")
            message = await receive(late)
            assert (message.topic, message.payload, message.retain) == (
                "iiot/demo/tank-1/status",
                status,
                True,
            )
            # A live publish to the same topic is not flagged retained for a subscriber.
            async with connected(broker.url, "gateway2") as gateway:
                await gateway.publish("iiot/demo/tank-1/status", b"x", qos=1, retain=True)
            live = await receive(late)
            assert (live.payload, live.retain) == (b"x", False)


async def test_last_will_is_published_when_the_connection_dies(start_broker: StartBroker) -> None:
    will = ("iiot/demo/tank-1/status", b'{"v":1,"state":"offline","ts":0}', 1, True)
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "watcher") as watcher,
    ):
        await watcher.subscribe("iiot/demo/tank-1/status")
        gateway = MqttClient(broker.url, client_id="gw", will=will)
        await gateway.connect()
        await gateway.publish("iiot/demo/tank-1/status", b"online", qos=1, retain=True)
        assert (await receive(watcher)).payload == b"online"

        await gateway.abort()  # TCP closed without DISCONNECT, like a crash

        message = await receive(watcher)
        assert (message.topic, message.payload) == (will[0], will[1])
        async with connected(broker.url, "late") as late:  # the will was retained
            await late.subscribe("iiot/demo/tank-1/status")
            assert (await receive(late)).payload == will[1]


async def test_graceful_disconnect_sends_no_will(start_broker: StartBroker) -> None:
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "watcher") as watcher,
    ):
        await watcher.subscribe("iiot/demo/#")
        gateway = MqttClient(broker.url, client_id="gw", will=("iiot/demo/w", b"dead", 1, False))
        await gateway.connect()
        await gateway.disconnect()
        async with connected(broker.url, "marker") as marker:
            await marker.publish("iiot/demo/marker", b"m")
        seen = await receive_until(watcher, "iiot/demo/marker")
        assert [m.topic for m in seen] == ["iiot/demo/marker"]


async def test_persistent_session_queues_qos1_while_offline(start_broker: StartBroker) -> None:
    queued_count = 300
    async with start_broker(BrokerConfig()) as broker:
        platform = MqttClient(broker.url, client_id="platform", clean_start=False)
        await platform.connect()
        await platform.subscribe("iiot/demo/+/telemetry", qos=1)
        await platform.disconnect()

        async with connected(broker.url, "gw") as gateway:
            for seq in range(queued_count):
                await gateway.publish("iiot/demo/tank-1/telemetry", str(seq).encode(), qos=1)

        # Same client id, no new SUBSCRIBE: the broker kept the session and its queue.
        platform = MqttClient(broker.url, client_id="platform", clean_start=False)
        await platform.connect()
        try:
            queued = [await receive(platform) for _ in range(queued_count)]
            async with asyncio.timeout(2):  # the session is fully usable right away
                await platform.publish("iiot/demo/tank-1/cmd", b"x")
        finally:
            await platform.disconnect()
    assert [m.payload for m in queued] == [str(seq).encode() for seq in range(queued_count)]
    assert {(m.qos, m.retain) for m in queued} == {(1, False)}


async def test_clean_start_drops_the_old_session(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig()) as broker:
        first = MqttClient(broker.url, client_id="c", clean_start=False)
        await first.connect()
        await first.subscribe("iiot/demo/#")
        await first.disconnect()
        async with connected(broker.url, "gw") as gateway:
            await gateway.publish("iiot/demo/a", b"queued")
        async with connected(broker.url, "c") as fresh, connected(broker.url, "gw2") as gw2:
            await fresh.subscribe("iiot/demo/marker")
            await gw2.publish("iiot/demo/marker", b"m")
            seen = await receive_until(fresh, "iiot/demo/marker")
    assert [m.payload for m in seen] == [b"m"]


async def test_publish_without_connection_fails_fast(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig()) as broker:
        client = MqttClient(broker.url, client_id="c")
        with pytest.raises(MqttNotConnectedError, match="not connected"):
            await client.publish("iiot/demo/x", b"1")
        await client.connect()
        await client.disconnect()
        # fails fast: the first step of the coroutine raises, it never waits for anything
        publish = client.publish("iiot/demo/x", b"1")
        with pytest.raises(MqttNotConnectedError, match="not connected"):
            publish.send(None)
        assert not client.connected


async def test_unreachable_broker_is_reported() -> None:
    port = pick_free_port("127.0.0.1")
    client = MqttClient(f"mqtt://127.0.0.1:{port}", client_id="c")
    with pytest.raises(MqttConnectError, match="connection refused"):
        await client.connect(timeout=3)
    await client.disconnect()


async def test_abort_of_a_subscriber_ends_its_stream_without_reconnecting(
    start_broker: StartBroker,
) -> None:
    changes: list[bool] = []
    async with start_broker(BrokerConfig()) as broker:
        client = MqttClient(broker.url, client_id="c")
        client.on_connection_change(changes.append)
        await client.connect()
        await client.abort()
        await asyncio.sleep(0.3)
        assert [m async for m in client.messages()] == []
    assert changes == [True, False]
    assert not client.connected


async def test_burst_of_qos1_messages_is_not_dropped(start_broker: StartBroker) -> None:
    total = 2000
    async with (
        start_broker(BrokerConfig()) as broker,
        connected(broker.url, "sub") as subscriber,
        connected(broker.url, "pub") as publisher,
    ):
        await subscriber.subscribe("iiot/demo/#", qos=1)
        for start in range(0, total, 200):
            await asyncio.gather(
                *(
                    publisher.publish("iiot/demo/burst", str(seq).encode(), qos=1)
                    for seq in range(start, start + 200)
                )
            )
        payloads = {(await receive(subscriber, within=20)).payload for _ in range(total)}
    assert payloads == {str(seq).encode() for seq in range(total)}
