"""Rules (threshold with hysteresis, rate of change, stale data) and the alarm lifecycle."""

from __future__ import annotations

import json
import time

import pytest
from platform_helpers import RunningApp, eventually, publisher, service_of, telemetry

from iiot_platform.ingest import RawMessage
from iiotlab.mqtt import Broker, MqttClient

pytestmark = pytest.mark.integration


def _message(seq: int, ts: int | None = None, **metrics: object) -> RawMessage:
    body = {
        "v": 1,
        "device": "tank-1",
        "seq": seq,
        "ts": ts or int(time.time() * 1000),
        "metrics": metrics,
    }
    return RawMessage("iiot/demo/tank-1/telemetry", json.dumps(body).encode(), 0)


async def test_threshold_hysteresis_and_lifecycle(running_app: RunningApp) -> None:
    async with running_app() as (app, api):
        service = service_of(app)
        rule = await api.post(
            "/api/rules",
            json={
                "name": "level high",
                "kind": "threshold",
                "device": "tank-1",
                "metric": "level",
                "high": 4.0,
                "hysteresis": 0.5,
            },
        )
        assert rule.status_code == 201, rule.text
        levels = [3.0, 4.2, 3.8, 3.6, 3.4, 4.5]  # trips, holds inside the band, clears, trips
        t0 = int(time.time() * 1000)
        await service.ingestor.process(
            [_message(i, t0 + 100 * i, level=v) for i, v in enumerate(levels)]
        )
        alarms = (await api.get("/api/alarms")).json()
        assert [a["state"] for a in alarms] == ["active", "cleared"]
        assert alarms[1]["value"] == 4.2 and alarms[1]["cleared_value"] == 3.4
        active = alarms[0]
        acked = await api.post(f"/api/alarms/{active['id']}/acknowledge")
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        again = await api.post(f"/api/alarms/{active['id']}/acknowledge")
        assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
        await service.ingestor.process([_message(10, t0 + 2000, level=1.0)])
        final = (await api.get(f"/api/alarms/{active['id']}")).json()
        assert final["state"] == "cleared" and final["acknowledged_by"] == "anonymous"
        assert (await api.get("/api/alarms?state=active")).json() == []


async def test_rate_of_change_and_low_threshold(running_app: RunningApp) -> None:
    async with running_app() as (app, api):
        service = service_of(app)
        await api.post(
            "/api/rules",
            json={
                "name": "fast fill",
                "kind": "rate",
                "metric": "level",
                "max_rate": 1.0,
            },
        )
        await api.post(
            "/api/rules",
            json={
                "name": "low",
                "kind": "threshold",
                "metric": "pressure",
                "low": 2.0,
            },
        )
        t0 = 1_763_719_200_000
        steps = [(0, 1.0), (1000, 1.5), (2000, 4.0), (3000, 4.2)]  # 0.5/s, 2.5/s, 0.2/s
        batch = [_message(i, t0 + dt, level=v, pressure=1.0 + i) for i, (dt, v) in enumerate(steps)]
        await service.ingestor.process(batch)
        alarms = {a["rule"]: a for a in (await api.get("/api/alarms")).json()}
        assert alarms["fast fill"]["state"] == "cleared"
        assert alarms["fast fill"]["raised_ms"] == t0 + 2000
        assert alarms["low"]["state"] == "cleared" and alarms["low"]["value"] == 1.0


async def test_stale_rule_and_alarm_topic(embedded_broker: Broker, running_app: RunningApp) -> None:
    async with running_app(broker_url=embedded_broker.url) as (app, api):
        await api.post("/api/rules", json={"name": "silent", "kind": "stale", "stale_s": 0.3})
        watcher = MqttClient(embedded_broker.url, client_id="alarm-watcher")
        await watcher.connect()
        await watcher.subscribe("iiot/demo/+/alarm")
        device = await publisher(embedded_broker.url)
        try:
            await device.publish("iiot/demo/pump-1/telemetry", telemetry("pump-1", 1))
            seen = []
            async for message in watcher.messages():
                seen.append(json.loads(message.payload))
                if len(seen) == 1:  # the stale alarm is active: a new message clears it
                    await device.publish("iiot/demo/pump-1/telemetry", telemetry("pump-1", 2))
                else:
                    break
            assert [(m["rule"], m["state"]) for m in seen] == [
                ("silent", "active"),
                ("silent", "cleared"),
            ]
            alarm = (await api.get("/api/alarms")).json()[0]
            assert alarm["device"] == "pump-1" and alarm["kind"] == "stale"
            assert service_of(app).alarms.select("demo")[0].state in ("cleared", "active")
        finally:
            await device.disconnect()
            await watcher.disconnect()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "a", "kind": "threshold", "metric": "x"}, "'high', 'low'"),
        ({"name": "a", "kind": "threshold", "high": 1}, "needs 'metric'"),
        ({"name": "a", "kind": "threshold", "metric": "x", "low": 5, "high": 1}, "below"),
        ({"name": "a", "kind": "rate", "metric": "x"}, "max_rate"),
        ({"name": "a", "kind": "stale"}, "stale_s"),
        ({"name": "a", "kind": "magic"}, "threshold"),
    ],
)
async def test_incomplete_rules_are_refused(
    running_app: RunningApp, body: dict[str, object], words: str
) -> None:
    async with running_app() as (_, api):
        answer = await api.post("/api/rules", json=body)
        assert answer.status_code == 422
        assert words in json.dumps(answer.json())


async def test_rules_and_alarms_survive_restart(running_app: RunningApp) -> None:
    async with running_app() as (app, api):
        await api.post(
            "/api/rules", json={"name": "hot", "kind": "threshold", "metric": "level", "high": 1.0}
        )
        await service_of(app).ingestor.process([_message(1, level=5.0)])
    async with running_app() as (app, api):
        assert [r["name"] for r in (await api.get("/api/rules")).json()] == ["hot"]
        assert [a["state"] for a in (await api.get("/api/alarms")).json()] == ["active"]
        device = (await api.get("/api/devices/demo/tank-1")).json()
        assert device["messages"] == 1 and device["online"] is False
        await service_of(app).ingestor.process([_message(2, level=0.0)])
        await eventually(lambda: service_of(app).alarms.select("demo", "cleared"))
