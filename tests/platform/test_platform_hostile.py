"""Hostile data and hostile neighbours (issue #12), through a real broker: a bad message
never takes valid ones with it, one tenant's junk or flood harms only that tenant, and
listings stay bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from platform_helpers import RunningApp, eventually, publisher, service_of, telemetry

from iiot_platform.service import PlatformService
from iiot_platform.settings import ApiToken
from iiotlab.mqtt import Broker, MqttClient

pytestmark = pytest.mark.integration

NESTED_DEPTH = 50_000
OVERSIZED = 1024 * 1024


def _nested(device: str, seq: int) -> bytes:
    head = f'{{"v":1,"device":"{device}","seq":{seq},"ts":1,"metrics":{{"x":'.encode()
    return head + b"[" * NESTED_DEPTH + b"]" * NESTED_DEPTH + b"}}"


def _oversized(device: str, seq: int) -> bytes:
    head = f'{{"v":1,"device":"{device}","seq":{seq},"ts":1,"metrics":{{"x":"'.encode()
    return head + b"a" * OVERSIZED + b'"}}'


async def _letters(api: httpx.AsyncClient, query: str = "") -> list[dict[str, object]]:
    """Every dead letter, following next_before."""
    found: list[dict[str, object]] = []
    before = ""
    while True:
        page = (await api.get(f"/api/dead-letters?limit=1000{query}{before}")).json()
        found.extend(page["dead_letters"])
        if page["next_before"] is None:
            return found
        before = f"&before={page['next_before']}"


async def _stream(client: MqttClient, tenant: str, valid: int, every: int) -> int:
    """`valid` QoS 1 telemetry messages, a nested then an oversized one every `every`;
    returns how many bad ones went out."""
    bad = 0
    for seq in range(1, valid + 1):
        await client.publish(f"iiot/{tenant}/tank-1/telemetry", telemetry("tank-1", seq))
        if seq % every == 0:
            hostile = _nested if bad % 2 == 0 else _oversized
            await client.publish(f"iiot/{tenant}/tank-1/telemetry", hostile("tank-1", 10**6 + seq))
            bad += 1
    return bad


async def test_nested_and_oversized_messages_take_no_valid_message_with_them(
    broker: Broker, running_app: RunningApp
) -> None:
    async with running_app(broker_url=broker.url) as (app, api):
        service = service_of(app)
        alice = await publisher(broker.url, "gw-alice")
        bob = await publisher(broker.url, "gw-bob")
        valid = 400
        try:  # publishers stay connected until everything is stored
            bad = await asyncio.gather(
                _stream(alice, "alice", valid, 50), _stream(bob, "bob", valid, 40)
            )
            expected = 2 * valid + sum(bad)
            await eventually(lambda: service.ingestor.stats.received >= expected, 60)
            await service.ingestor.join()
            for tenant, bad_count in zip(("alice", "bob"), bad, strict=True):
                assert await service.store.count(tenant, "tank-1") == valid, tenant
                letters = await _letters(api, f"&tenant={tenant}")
                assert len(letters) == bad_count, tenant
                nested = [d for d in letters if "nests objects/arrays" in str(d["reason"])]
                oversized = [d for d in letters if "over the platform's limit" in str(d["reason"])]
                assert len(nested) + len(oversized) == bad_count, letters
                for letter in oversized:
                    assert letter["size"] > OVERSIZED
                    assert letter["kept"] == service.settings.dead_letter_payload_bytes
                    assert "max_message_bytes" in str(letter["reason"])
            health = (await api.get("/api/health")).json()
            assert health["status"] == "ok", health
            assert health["ingest"]["lost_messages"] == 0
        finally:
            await alice.disconnect()
            await bob.disconnect()


def _poison_the_store(service: PlatformService, device: str) -> Path:
    """A real constraint in the real telemetry file: rows of `device` abort the insert."""
    path = service.settings.data_dir / "telemetry.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON messages"
            f" WHEN NEW.device = '{device}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
    return path


async def test_a_message_that_breaks_the_store_leaves_the_rest_of_its_batch_stored(
    broker: Broker, running_app: RunningApp
) -> None:
    async with running_app(broker_url=broker.url) as (app, api):
        service = service_of(app)
        path = _poison_the_store(service, "poison-1")
        client = await publisher(broker.url, "gw-mixed")
        try:
            for seq in range(1, 201):
                await client.publish("iiot/alice/tank-1/telemetry", telemetry("tank-1", seq))
                await client.publish("iiot/bob/tank-1/telemetry", telemetry("tank-1", seq))
                if seq in (50, 150):
                    await client.publish(
                        "iiot/alice/poison-1/telemetry", telemetry("poison-1", seq)
                    )
            await eventually(lambda: service.ingestor.stats.received >= 402, 30)
            await service.ingestor.join()
            assert await service.store.count("alice", "tank-1") == 200
            assert await service.store.count("bob", "tank-1") == 200
            letters = await _letters(api)
            assert [d["device"] for d in letters] == ["poison-1", "poison-1"]
            assert all("poisoned row" in str(d["reason"]) for d in letters)
            health = (await api.get("/api/health")).json()
            assert health["status"] == "degraded" and health["ingest"]["failed_batches"] >= 1
            assert health["ingest"]["lost_messages"] == 0

            # Only stored messages count as seen: once the store accepts it, a resend is kept.
            with sqlite3.connect(path) as connection:
                connection.execute("DROP TRIGGER poison")
            for seq in (50, 150):
                await client.publish("iiot/alice/poison-1/telemetry", telemetry("poison-1", seq))
            await eventually(lambda: service.ingestor.stats.received >= 404, 30)
            await service.ingestor.join()
            assert await service.store.count("alice", "poison-1") == 2
            device = (await api.get("/api/devices/alice/poison-1")).json()
            assert device["messages"] == 2 and device["duplicates"] == 0
        finally:
            await client.disconnect()


async def _junk(client: MqttClient, tenant: str, count: int) -> None:
    for index in range(count):
        await client.publish(f"iiot/{tenant}/tank-1/telemetry", b"junk %d" % index)


async def test_one_tenants_junk_does_not_evict_another_tenants_dead_letters(
    embedded_broker: Broker, running_app: RunningApp
) -> None:
    settings = {"dead_letter_tenant_limit": 50, "dead_letter_limit": 60}
    async with running_app(broker_url=embedded_broker.url, **settings) as (app, api):
        service = service_of(app)
        client = await publisher(embedded_broker.url, "gw-junk")
        try:
            await _junk(client, "bob", 5)
            await _junk(client, "carol", 12)
            await eventually(lambda: service.ingestor.stats.dead_letters >= 17)
            await _junk(client, "alice", 300)  # past its own cap, and past the total
            await eventually(lambda: service.ingestor.stats.received >= 317, 30)
            await service.ingestor.join()
            counts = {
                t: len(await _letters(api, f"&tenant={t}")) for t in ("alice", "bob", "carol")
            }
            # alice keeps its own 50 newest; over the total (60), the tenant holding the
            # most (alice) loses its oldest: bob and carol keep every dead letter
            assert counts == {"alice": 60 - 5 - 12, "bob": 5, "carol": 12}
            newest = await _letters(api, "&tenant=alice")
            assert newest[0]["preview"] == "junk 299"
        finally:
            await client.disconnect()


async def test_large_listing_is_bounded_and_payloads_come_one_at_a_time(
    embedded_broker: Broker, running_app: RunningApp
) -> None:
    tokens = (ApiToken("t-alice", "student", "alice", "alice"),)
    page_bytes = 20_000
    async with running_app(
        broker_url=embedded_broker.url,
        auth_enabled=True,
        tokens=tokens,
        dead_letter_page_bytes=page_bytes,
    ) as (app, api):
        service = service_of(app)
        client = await publisher(embedded_broker.url, "gw-big")
        big = b"{" + b"x" * 200_000  # not JSON, under the size limit
        try:
            for index in range(150):
                await client.publish("iiot/alice/tank-1/telemetry", big + b"%d" % index)
            await eventually(lambda: service.ingestor.stats.received >= 150, 30)
            await service.ingestor.join()
            alice = {"Authorization": "Bearer t-alice"}
            started = time.perf_counter()
            answer = await api.get("/api/dead-letters?limit=1000", headers=alice)
            elapsed = time.perf_counter() - started
            page = answer.json()
            assert len(answer.content) <= page_bytes + 2_000, len(answer.content)
            assert 0 < len(page["dead_letters"]) < 150 and page["next_before"] is not None
            assert elapsed < 2.0
            for letter in page["dead_letters"]:
                assert set(letter) >= {"id", "reason", "size", "kept", "preview"}
                assert "payload_base64" not in letter and "payload_text" not in letter
                assert letter["size"] > 200_000 and letter["kept"] < letter["size"]
                assert len(letter["preview"]) <= 120
            seen, before = 0, ""
            while True:
                paged = await api.get(f"/api/dead-letters?limit=1000{before}", headers=alice)
                seen += len(paged.json()["dead_letters"])
                if paged.json()["next_before"] is None:
                    break
                before = f"&before={paged.json()['next_before']}"
            assert seen == 150
            first = page["dead_letters"][0]
            one = (await api.get(f"/api/dead-letters/{first['id']}", headers=alice)).json()
            kept = service.settings.dead_letter_payload_bytes
            assert len(one["payload_text"]) == kept and one["kept"] == kept
            assert one["size"] > 200_000
        finally:
            await client.disconnect()


async def test_per_tenant_rate_limit_drops_and_counts(
    broker: Broker, running_app: RunningApp
) -> None:
    limits = {"ingest_rate_per_tenant": 20.0, "ingest_burst_per_tenant": 60}
    async with running_app(broker_url=broker.url, **limits) as (app, api):
        service = service_of(app)
        client = await publisher(broker.url, "gw-flood")
        try:
            for seq in range(1, 301):
                await client.publish("iiot/flood/tank-1/telemetry", telemetry("tank-1", seq))
                if seq % 15 == 0:
                    await client.publish("iiot/calm/tank-1/telemetry", telemetry("tank-1", seq))
            await eventually(lambda: service.ingestor.stats.received >= 320, 30)
            await service.ingestor.join()
            stored = await service.store.count("flood", "tank-1")
            dropped = 300 - stored
            assert 60 <= stored < 300 and dropped > 0
            assert await service.store.count("calm", "tank-1") == 20
            shown = (await api.get("/api/limits")).json()
            assert shown["rate_limited"] == {"flood": dropped}
            assert shown["ingest_rate_per_tenant"] == 20.0
            health = (await api.get("/api/health")).json()
            assert health["ingest"]["rate_limited"] == dropped
        finally:
            await client.disconnect()
