"""Fixtures for the MQTT tests: the same test runs on every broker kind.

Other parts can copy these patterns: ``broker_kind`` parametrises a test over the
embedded (amqtt) and Mosquitto brokers; Mosquitto cases carry the ``mosquitto`` marker
and are skipped only when the binary is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mqtt_helpers import StartBroker

from iiotlab.certs import TlsFiles, make_tls_files
from iiotlab.mqtt import Broker, BrokerConfig, BrokerKind, make_broker


@pytest.fixture
def start_broker(broker_kind: BrokerKind) -> StartBroker:
    """``async with start_broker(BrokerConfig(...)) as broker:`` for the kind under test."""

    @asynccontextmanager
    async def run(config: BrokerConfig) -> AsyncIterator[Broker]:
        broker = make_broker(broker_kind, config)
        await broker.start()
        try:
            yield broker
        finally:
            await broker.stop()

    return run


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the brokers' certificates."""
    return make_tls_files(tmp_path_factory.mktemp("other-tls")).ca_file
