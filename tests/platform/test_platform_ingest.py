"""Ingestion end to end through a real broker (embedded amqtt and Mosquitto)."""

from __future__ import annotations

import json
import time

import pytest
from platform_helpers import RunningApp, eventually, publisher, service_of, telemetry

from iiotlab.mqtt import Broker, MqttClient

pytestmark = pytest.mark.integration


async def test_telemetry_status_and_commands_end_to_end(
    broker: Broker, running_app: RunningApp
) -> None:
    async with running_app(broker_url=broker.url) as (app, api):
        service = service_of(app)
        device = await publisher(broker.url, "gateway-tank-1")
        try:
            status = {"v": 1, "state": "online", "ts": int(time.time() * 1000)}
            await device.publish(
                "iiot/demo/tank-1/status", json.dumps(status).encode(), retain=True
            )
            for seq in range(1, 51):
                await device.publish("iiot/demo/tank-1/telemetry", telemetry("tank-1", seq))
            for seq in (10, 20, 50):  # resent after a reconnect: stored once
                await device.publish("iiot/demo/tank-1/telemetry", telemetry("tank-1", seq))
            await eventually(lambda: service.ingestor.stats.telemetry >= 53)
            await service.ingestor.join()

            listed = (await api.get("/api/devices")).json()
            assert [(d["tenant"], d["device"], d["online"]) for d in listed] == [
                ("demo", "tank-1", True)
            ]
            assert listed[0]["duplicates"] == 3 and listed[0]["messages"] == 50
            latest = (await api.get("/api/devices/demo/tank-1/latest")).json()
            assert latest["level"]["value"] == 50.0 and latest["level"]["seq"] == 50
            series = (await api.get("/api/devices/demo/tank-1/series?metric=level")).json()
            assert [p[1] for p in series["points"]] == [float(s) for s in range(1, 51)]
            assert await service.store.count("demo", "tank-1") == 50

            await _command_round_trip(broker, api)
        finally:
            await device.disconnect()


async def _command_round_trip(broker: Broker, api: object) -> None:
    import httpx

    assert isinstance(api, httpx.AsyncClient)
    gateway = MqttClient(broker.url, client_id="gateway-cmd")
    await gateway.connect()
    await gateway.subscribe("iiot/demo/tank-1/cmd")
    try:
        sent = await api.post(
            "/api/devices/demo/tank-1/commands", json={"metric": "pump_speed_sp", "value": 50.0}
        )
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["id"]
        async for message in gateway.messages():
            if message.topic == "iiot/demo/tank-1/cmd":  # amqtt may also replay retained ones
                command = json.loads(message.payload)
                break
        assert command == {"v": 1, "id": command_id, "metric": "pump_speed_sp", "value": 50.0}
        ack = {"v": 1, "id": command_id, "ok": True, "error": None}
        await gateway.publish("iiot/demo/tank-1/cmd/ack", json.dumps(ack).encode())

        async def acknowledged() -> bool:
            record = (await api.get(f"/api/commands/{command_id}")).json()
            return bool(record["state"] == "acknowledged" and record["ok"] is True)

        await eventually(acknowledged)
        listed = (await api.get("/api/devices/demo/tank-1/commands")).json()
        assert [c["id"] for c in listed] == [command_id]
    finally:
        await gateway.disconnect()


async def test_last_will_marks_device_offline(
    embedded_broker: Broker, running_app: RunningApp
) -> None:
    async with running_app(broker_url=embedded_broker.url) as (_, api):
        offline = json.dumps({"v": 1, "state": "offline", "ts": int(time.time() * 1000)})
        device = MqttClient(
            embedded_broker.url,
            client_id="gw-will",
            will=("iiot/demo/boiler-1/status", offline.encode(), 1, True),
        )
        await device.connect()
        online = {"v": 1, "state": "online", "ts": int(time.time() * 1000) - 1}
        await device.publish("iiot/demo/boiler-1/status", json.dumps(online).encode(), retain=True)

        async def state() -> bool | None:
            found = await api.get("/api/devices/demo/boiler-1")
            return found.json()["online"] if found.status_code == 200 else None

        await eventually(lambda: _is(state(), True))
        await device.abort()  # a crash: the broker publishes the Last Will
        await eventually(lambda: _is(state(), False))


async def _is(value: object, expected: bool) -> bool:
    return await value is expected  # type: ignore[misc]
