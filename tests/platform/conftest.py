"""Fixtures of the platform tests: brokers of both kinds, a running app, an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from platform_helpers import RunningApp

from iiot_platform.app import create_app
from iiot_platform.settings import PlatformSettings
from iiotlab.mqtt import Broker, BrokerConfig, BrokerKind, make_broker


@pytest.fixture
async def broker(broker_kind: BrokerKind) -> AsyncIterator[Broker]:
    # No broker size limit: the platform's own limit (dead-lettered with a reason) is tested.
    instance = make_broker(broker_kind, BrokerConfig(max_message_bytes=None))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def embedded_broker() -> AsyncIterator[Broker]:
    async with make_broker("embedded", BrokerConfig()) as instance:
        yield instance


@pytest.fixture
def running_app(tmp_path: Path) -> RunningApp:
    """`async with running_app(broker_url=..., ...) as (app, client):` runs the lifespan."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        overrides.setdefault("data_dir", tmp_path / "platform")
        overrides.setdefault("mqtt_enabled", "broker_url" in overrides)
        overrides.setdefault("stale_check_interval_s", 0.2)
        app = create_app(PlatformSettings(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://platform") as c:
                yield app, c

    return run
