"""GET /api/events on a real uvicorn socket: what reaches an open stream, and whose."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from iiot_platform.events import QUEUE_SIZE, Event, EventHub, Subscription
from iiot_platform.settings import ApiToken, PlatformSettings
from iiot_platform.stack import PlatformServer

TOKENS = (
    ApiToken("tok-alice", "student", "alice", "Alice"),
    ApiToken("tok-bob", "student", "bob", "Bob"),
    ApiToken("tok-teacher", "instructor", None, "Teacher"),
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PlatformServer]:
    settings = PlatformSettings(
        data_dir=tmp_path / "platform", mqtt_enabled=False, auth_enabled=True, tokens=TOKENS
    )
    platform = PlatformServer(settings, "127.0.0.1", 0)
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


class Stream:
    """An open text/event-stream read event by event (comments skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> tuple[str, dict[str, Any]]:
        kind, data = "", ""
        async with asyncio.timeout(within):
            async for line in self.lines:
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and kind:
                    return kind, json.loads(data)
        raise AssertionError("the stream ended")

    async def of(self, kind: str, within: float = 5.0) -> dict[str, Any]:
        while True:
            got, data = await self.next(within)
            if got == kind:
                return data


@asynccontextmanager
async def stream_of(
    port: int, path: str = "/api/events?token=tok-alice", **headers: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    """A client of the platform and an open event stream."""
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        yield client, response


def telemetry(device: str, seq: int, level: float) -> dict[str, Any]:
    ts = int(time.time() * 1000)
    return {"v": 1, "device": device, "seq": seq, "ts": ts, "metrics": {"level": level}}


async def post(client: httpx.AsyncClient, token: str, tenant: str, body: Any) -> None:
    response = await client.post(
        f"/api/devices/{tenant}/tank-1/telemetry",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text


async def test_stored_telemetry_reaches_the_stream_once(server: PlatformServer) -> None:
    async with stream_of(server.port) as (client, response):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        first = telemetry("tank-1", 1, 1.5)
        await post(client, "tok-alice", "alice", first)
        event = await stream.of("telemetry")
        assert event == {
            "tenant": "alice",
            "device": "tank-1",
            "seq": 1,
            "ts": first["ts"],
            "metrics": {"level": 1.5},
        }
        # a duplicate is not stored again and not announced again; the next one is
        await post(client, "tok-alice", "alice", [first, telemetry("tank-1", 2, 2.5)])
        assert (await stream.of("telemetry"))["seq"] == 2


async def test_a_student_stream_carries_only_its_own_tenant(server: PlatformServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with (
            client.stream("GET", "/api/events?token=tok-alice") as alice,
            client.stream(
                "GET", "/api/events", headers={"Authorization": "Bearer tok-teacher"}
            ) as teacher,
        ):
            alice_stream, teacher_stream = Stream(alice), Stream(teacher)
            await post(client, "tok-bob", "bob", telemetry("tank-1", 1, 9.0))
            await post(client, "tok-alice", "alice", telemetry("tank-1", 1, 1.0))
            seen = await alice_stream.of("telemetry")
            assert seen["tenant"] == "alice"  # bob's came first and was not sent to alice
            tenants = {(await teacher_stream.of("telemetry"))["tenant"] for _ in range(2)}
            assert tenants == {"alice", "bob"}
        refused = await client.get("/api/events?token=wrong")
        assert refused.status_code == 401
        other = await client.get("/api/events?token=tok-alice&tenant=bob")
        assert other.status_code == 403 and "tenant 'alice'" in other.text


async def test_status_dead_letters_and_alarms_are_announced(server: PlatformServer) -> None:
    ingestor = server.service.ingestor
    async with stream_of(server.port, "/api/events?token=tok-teacher") as (client, response):
        stream = Stream(response)
        now = int(time.time() * 1000)
        status = {"v": 1, "state": "online", "ts": now}
        await ingestor.submit("iiot/alice/tank-1/status", json.dumps(status).encode(), now)
        assert await stream.of("status") == {
            "tenant": "alice",
            "device": "tank-1",
            "online": True,
            "ts": now,
        }
        await ingestor.submit("iiot/alice/tank-1/telemetry", b"{not json", now)
        assert await stream.of("dead_letters") == {"tenant": "alice", "count": 1}
        rule = {"name": "any level", "kind": "threshold", "metric": "level", "high": -1.0}
        headers = {"Authorization": "Bearer tok-alice"}
        created = await client.post("/api/rules", json=rule, headers=headers)
        assert created.status_code == 201, created.text
        await post(client, "tok-alice", "alice", telemetry("tank-1", 1, 1.0))
        assert await stream.of("alarms") == {"tenant": "alice"}


async def test_stopping_the_server_ends_open_streams(tmp_path: Path) -> None:
    platform = PlatformServer(
        PlatformSettings(data_dir=tmp_path / "platform", mqtt_enabled=False), "127.0.0.1", 0
    )
    await platform.start()
    async with stream_of(platform.port, "/api/events") as (_, response):
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        await platform.stop()
        async with asyncio.timeout(5):
            rest = [line async for line in lines]
        assert ": heartbeat" not in rest
    # uvicorn waits for open responses on shutdown: without the hub closing them, the
    # server outlasts STOP_TIMEOUT_S and is cancelled
    assert not platform.cancelled_on_stop


def test_a_reader_that_falls_behind_gets_one_resync_then_events_again() -> None:
    async def scenario() -> list[str]:
        subscription = Subscription(None)
        for i in range(QUEUE_SIZE + 50):  # 50 lost
            subscription.offer(Event("telemetry", "a", {"seq": i}))
        assert subscription.lagged and subscription.dropped == 50
        for _ in range(QUEUE_SIZE // 2 + 1):
            subscription.queue.get_nowait()
        subscription.offer(Event("telemetry", "a", {"seq": -1}))
        kinds = []
        while not subscription.queue.empty():
            event = subscription.queue.get_nowait()
            assert event is not None
            kinds.append(event.kind)
        return kinds[-2:]

    assert asyncio.run(scenario()) == ["resync", "telemetry"]


def test_publishing_with_nobody_listening_keeps_nothing() -> None:
    hub = EventHub()
    hub.publish("telemetry", "a", {"x": 1})
    assert not hub.listening and hub.subscribers == 0
    event = Event("telemetry", "a", {"bad": float("nan")})
    assert event.encode() == b""  # never sends what JSON.parse would refuse
