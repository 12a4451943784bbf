"""Fixtures of the platform tests: brokers of both kinds, a running app, an API client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from iiot_platform.app import create_app
from iiot_platform.service import PlatformService
from iiot_platform.settings import PlatformSettings
from iiotlab.mqtt import Broker, BrokerConfig, BrokerKind, MqttClient, make_broker
from iiotlab.mqtt.mosquitto import find_mosquitto

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

RunningApp = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture(params=BROKER_KINDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    kind: BrokerKind = request.param
    instance = make_broker(kind, BrokerConfig())
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


def service_of(app: FastAPI) -> PlatformService:
    service: PlatformService = app.state.service
    return service


def telemetry(device: str, seq: int, **metrics: Any) -> bytes:
    body = {
        "v": 1,
        "device": device,
        "seq": seq,
        "ts": int(time.time() * 1000),
        "metrics": metrics or {"level": float(seq)},
    }
    return json.dumps(body).encode()


async def publisher(url: str, name: str = "test-publisher") -> MqttClient:
    client = MqttClient(url, client_id=name)
    await client.connect()
    return client


async def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Await until check() (sync or async) returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)
