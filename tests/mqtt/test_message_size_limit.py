"""Both brokers refuse PUBLISH payloads over ``BrokerConfig.max_message_bytes``.

MQTT 3.1.1 has no negative PUBACK: the broker acknowledges the message and drops it
(Mosquitto's ``message_size_limit``), and the connection goes on.
"""

from __future__ import annotations

import pytest
from mqtt_helpers import StartBroker, connected, receive_until

from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerConfig
from iiotlab.mqtt.broker import MQTT_MAX_PAYLOAD_BYTES
from iiotlab.payloads import MAX_PAYLOAD_BYTES

MIB = 1024 * 1024


@pytest.mark.unit
def test_the_default_limit_is_the_contracts_payload_limit() -> None:
    assert BrokerConfig().max_message_bytes == MAX_PAYLOAD_BYTES == 256 * 1024
    assert BrokerConfig(max_message_bytes=None).max_message_bytes is None
    for bad in (0, -1, MQTT_MAX_PAYLOAD_BYTES + 1):
        with pytest.raises(ConfigError, match="max_message_bytes"):
            BrokerConfig(max_message_bytes=bad)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("options", "accepted", "refused"),
    [
        ({}, [1, MAX_PAYLOAD_BYTES], [MAX_PAYLOAD_BYTES + 1, MIB]),
        ({"max_message_bytes": 1000}, [1000], [1001, 5000]),
        ({"max_message_bytes": None}, [MIB + 1], []),
    ],
    ids=["default", "1000", "no-limit"],
)
async def test_messages_over_the_limit_are_dropped_and_the_connection_lives_on(
    start_broker: StartBroker,
    options: dict[str, int | None],
    accepted: list[int],
    refused: list[int],
) -> None:
    async with (
        start_broker(BrokerConfig(**options)) as broker,  # type: ignore[arg-type]
        connected(broker.url, "platform") as subscriber,
        connected(broker.url, "gateway") as publisher,
    ):
        await subscriber.subscribe("iiot/demo/#", qos=1)
        for size in sorted(accepted + refused):
            await publisher.publish("iiot/demo/tank-1/telemetry", b"x" * size, qos=1)  # acked
        await publisher.publish("iiot/demo/marker", b"end", qos=1)
        seen = await receive_until(subscriber, "iiot/demo/marker", within=20)
    assert [len(m.payload) for m in seen[:-1]] == sorted(accepted)
