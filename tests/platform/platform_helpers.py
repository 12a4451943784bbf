"""Helpers of the platform tests (importable by name, unlike conftest)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from fastapi import FastAPI

from iiot_platform.service import PlatformService
from iiotlab.mqtt import MqttClient

RunningApp = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


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
