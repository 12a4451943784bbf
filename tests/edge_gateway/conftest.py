"""Fixtures for the gateway tests: brokers of both kinds (embedded amqtt and Mosquitto)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from iiotlab.mqtt import Broker, BrokerConfig, BrokerKind, make_broker

StartBroker = Callable[[], AbstractAsyncContextManager[Broker]]


@pytest.fixture
def start_broker(broker_kind: BrokerKind) -> StartBroker:
    @asynccontextmanager
    async def run() -> AsyncIterator[Broker]:
        broker = make_broker(broker_kind, BrokerConfig())
        await broker.start()
        try:
            yield broker
        finally:
            await broker.stop()
            close = getattr(broker, "close", None)
            if close is not None:
                await close()

    return run
