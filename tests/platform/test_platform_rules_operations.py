"""Operations rules: a frozen value (stalled sensor) and a device gone offline (Last Will)."""

from __future__ import annotations

import json
import time

import pytest
from platform_helpers import RunningApp, service_of

from iiot_platform.ingest import RawMessage

pytestmark = pytest.mark.integration


def _telemetry(seq: int, ts: int, **metrics: object) -> RawMessage:
    body = {"v": 1, "device": "boiler-1", "seq": seq, "ts": ts, "metrics": metrics}
    return RawMessage("iiot/demo/boiler-1/telemetry", json.dumps(body).encode(), ts)


def _status(state: str, received_ms: int, ts: int = 1) -> RawMessage:
    body = {"v": 1, "state": state, "ts": ts}
    return RawMessage("iiot/demo/boiler-1/status", json.dumps(body).encode(), received_ms)


async def test_frozen_value_raises_after_frozen_s_and_clears_on_change(
    running_app: RunningApp,
) -> None:
    async with running_app() as (app, api):
        rule = {"name": "pt stuck", "kind": "frozen", "metric": "pressure", "frozen_s": 2}
        assert (await api.post("/api/rules", json=rule)).status_code == 201
        t0 = int(time.time() * 1000)
        # moving, then stuck at 5.5 from t0+1000 on: 1.5 s unchanged is not yet frozen
        moving = [5.1, 5.3, 5.5, 5.5, 5.5, 5.5]
        await service_of(app).ingestor.process(
            [_telemetry(i, t0 + 500 * i, pressure=v) for i, v in enumerate(moving)]
        )
        assert (await api.get("/api/alarms")).json() == []
        # 2 s unchanged (t0+3000): active; a message without the metric decides nothing
        await service_of(app).ingestor.process(
            [
                _telemetry(6, t0 + 3000, pressure=5.5),
                _telemetry(7, t0 + 3500, temperature=80.0),
                _telemetry(8, t0 + 4000, pressure=5.5),
            ]
        )
        alarms = (await api.get("/api/alarms")).json()
        assert [(a["kind"], a["state"], a["raised_ms"]) for a in alarms] == [
            ("frozen", "active", t0 + 3000)
        ]
        assert alarms[0]["value"] == 5.5 and "stuck at 5.5" in alarms[0]["message"]
        await service_of(app).ingestor.process([_telemetry(9, t0 + 4500, pressure=5.51)])
        alarms = (await api.get("/api/alarms")).json()
        assert [(a["state"], a["cleared_ms"]) for a in alarms] == [("cleared", t0 + 4500)]


async def test_offline_rule_follows_status_messages_at_their_arrival(
    running_app: RunningApp,
) -> None:
    async with running_app() as (app, api):
        rule = {"name": "gw offline", "kind": "offline", "device": "boiler-1"}
        assert (await api.post("/api/rules", json=rule)).status_code == 201
        ingest = service_of(app).ingestor
        t0 = int(time.time() * 1000)
        await ingest.process([_status("online", t0), _telemetry(1, t0 + 100, pressure=5.0)])
        assert (await api.get("/api/alarms")).json() == []
        # a Last Will carries the time its client connected: the alarm takes the arrival time
        await ingest.process([_status("offline", t0 + 5000, ts=t0 - 60_000)])
        await ingest.process([_status("offline", t0 + 5200)])  # a repeat changes nothing
        alarms = (await api.get("/api/alarms?state=active")).json()
        assert [(a["kind"], a["raised_ms"], a["metric"]) for a in alarms] == [
            ("offline", t0 + 5000, None)
        ]
        assert "offline" in alarms[0]["message"]
        # telemetry alone does not clear it: the status says whether the gateway is back
        await ingest.process([_telemetry(2, t0 + 6000, pressure=5.0)])
        assert len((await api.get("/api/alarms?state=active")).json()) == 1
        await ingest.process([_status("online", t0 + 9000)])
        alarms = (await api.get("/api/alarms")).json()
        assert [(a["state"], a["cleared_ms"]) for a in alarms] == [("cleared", t0 + 9000)]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "a", "kind": "frozen", "metric": "x"}, "frozen_s"),
        ({"name": "a", "kind": "frozen", "frozen_s": 3}, "needs 'metric'"),
        ({"name": "a", "kind": "frozen", "metric": "x", "frozen_s": 0}, "greater than 0"),
    ],
)
async def test_incomplete_operations_rules_are_refused(
    running_app: RunningApp, body: dict[str, object], words: str
) -> None:
    async with running_app() as (_, api):
        answer = await api.post("/api/rules", json=body)
        assert answer.status_code == 422
        assert words in json.dumps(answer.json())
