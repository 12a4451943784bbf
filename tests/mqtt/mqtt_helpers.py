"""Helpers for the MQTT tests (a plain module: conftest.py is not importable by name)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from iiotlab.mqtt import Broker, BrokerConfig, MqttClient, MqttMessage

StartBroker = Callable[[BrokerConfig], AbstractAsyncContextManager[Broker]]


@asynccontextmanager
async def connected(url: str, client_id: str, **options: object) -> AsyncIterator[MqttClient]:
    client = MqttClient(url, client_id=client_id, **options)  # type: ignore[arg-type]
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


async def receive(client: MqttClient, within: float = 5.0) -> MqttMessage:
    """The next message of ``client`` (fails the test after ``within`` seconds)."""
    async with asyncio.timeout(within):
        async for message in client.messages():
            return message
    raise AssertionError("the message stream ended")


async def receive_until(client: MqttClient, topic: str, within: float = 5.0) -> list[MqttMessage]:
    """Every message up to and including the first one on ``topic``."""
    seen: list[MqttMessage] = []
    async with asyncio.timeout(within):
        async for message in client.messages():
            seen.append(message)
            if message.topic == topic:
                return seen
    raise AssertionError(f"the message stream ended before {topic}")
