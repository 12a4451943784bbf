"""Fixtures for the gateway tests: brokers of both kinds (embedded amqtt and Mosquitto)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from iiotlab.mqtt import Broker, BrokerConfig, BrokerKind, make_broker
from iiotlab.mqtt.mosquitto import find_mosquitto

StartBroker = Callable[[], AbstractAsyncContextManager[Broker]]

BROKER_KINDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param(
        "mosquitto",
        id="mosquitto",
        marks=[
            pytest.mark.mosquitto,
            pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
        ],
    ),
]


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> BrokerKind:
    kind: BrokerKind = request.param
    return kind


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
