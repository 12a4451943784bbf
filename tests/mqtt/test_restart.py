"""A broker outage: stop, start on the same port, clients come back by themselves."""

from __future__ import annotations

import asyncio

import pytest
from mqtt_helpers import StartBroker, connected, receive

from iiotlab.mqtt import (
    BrokerConfig,
    BrokerKind,
    BrokerStartError,
    MosquittoBroker,
    MqttClient,
    MqttConnectError,
    MqttNotConnectedError,
    make_broker,
)

pytestmark = pytest.mark.integration


async def _wait_for(condition: asyncio.Event, seconds: float) -> None:
    await asyncio.wait_for(condition.wait(), seconds)


async def test_restart_on_same_port_and_client_reconnects(start_broker: StartBroker) -> None:
    changes: list[bool] = []
    back = asyncio.Event()
    async with start_broker(BrokerConfig()) as broker:
        port = broker.port
        client = MqttClient(
            broker.url, client_id="platform", reconnect_min_delay=0.1, reconnect_max_delay=0.5
        )

        def record(connected: bool) -> None:
            changes.append(connected)
            if connected and len(changes) > 1:
                back.set()

        client.on_connection_change(record)
        await client.connect()
        await client.subscribe("iiot/demo/#")

        await broker.stop()
        await asyncio.sleep(0.3)
        assert changes == [True, False]
        with pytest.raises(MqttNotConnectedError):
            await client.publish("iiot/demo/x", b"while down")
        await asyncio.sleep(1.0)  # several reconnect attempts fail meanwhile

        await broker.start()
        assert broker.port == port
        await _wait_for(back, 10)
        assert changes == [True, False, True]
        # The subscription was renewed on the new connection.
        async with connected(broker.url, "gw") as gateway:
            await gateway.publish("iiot/demo/tank-1/telemetry", b"after restart")
        assert (await receive(client)).payload == b"after restart"
        await client.publish("iiot/demo/own", b"works again")
        await client.disconnect()
    assert changes == [True, False, True, False]


async def test_publish_fails_once_the_broker_went_away(
    start_broker: StartBroker,
) -> None:
    async with start_broker(BrokerConfig()) as broker:
        client = MqttClient(broker.url, client_id="gw", auto_reconnect=False)
        await client.connect()
        await broker.stop()
        await asyncio.sleep(0.3)
        assert not client.connected
        with pytest.raises(MqttConnectError):
            await client.publish("iiot/demo/x", b"1")
        await client.disconnect()
        await client.disconnect()  # safe twice


async def test_stop_is_safe_twice_and_start_is_idempotent(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig()) as broker:
        await broker.start()
        port = broker.port
        await broker.stop()
        await broker.stop()
        await broker.start()
        assert broker.port == port
        async with connected(broker.url, "c") as client:
            assert client.connected


async def test_port_in_use_is_a_clear_start_error(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig()) as first:
        second = make_broker(broker_kind_of(first), BrokerConfig(port=first.port))
        with pytest.raises(BrokerStartError, match=str(first.port)):
            await second.start()
        await second.stop()


def broker_kind_of(broker: object) -> BrokerKind:
    return "mosquitto" if isinstance(broker, MosquittoBroker) else "embedded"
