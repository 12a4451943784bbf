"""POST /api/devices/{tenant}/{device}/telemetry: an APP writes derived metrics over REST."""

from __future__ import annotations

import time
from typing import Any

import pytest
from platform_helpers import RunningApp, service_of

from iiot_platform.settings import ApiToken

pytestmark = pytest.mark.unit

TOKENS = (
    ApiToken("t-alice", "student", "alice", "alice"),
    ApiToken("t-bob", "student", "bob", "bob"),
)
ALICE = {"Authorization": "Bearer t-alice"}


def _message(seq: int, ts: int, **metrics: Any) -> dict[str, Any]:
    return {"v": 1, "device": "oee-1", "seq": seq, "ts": ts, "metrics": metrics}


async def test_written_metrics_are_stored_and_read_back(running_app: RunningApp) -> None:
    async with running_app(auth_enabled=True, tokens=TOKENS) as (app, api):
        start = int(time.time() * 1000) // 10_000 * 10_000 - 60_000
        body = [_message(i, start + i * 10_000, oee=0.5 + i / 100) for i in range(3)]
        answer = await api.post("/api/devices/alice/oee-1/telemetry", headers=ALICE, json=body)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": 3, "processed": True}
        series = await api.get(
            "/api/devices/alice/oee-1/series",
            headers=ALICE,
            params={"metric": "oee", "start": start, "end": start + 30_000},
        )
        assert series.json()["points"] == [
            [start, 0.5],
            [start + 10_000, 0.51],
            [start + 20_000, 0.52],
        ]
        # the same seq again is a duplicate, as over MQTT
        again = await api.post("/api/devices/alice/oee-1/telemetry", headers=ALICE, json=body[0])
        assert again.status_code == 202
        assert service_of(app).ingestor.stats.duplicates == 1


async def test_refusals_say_what_to_change(running_app: RunningApp) -> None:
    async with running_app(auth_enabled=True, tokens=TOKENS) as (_, api):
        now = int(time.time() * 1000)
        url = "/api/devices/alice/oee-1/telemetry"
        other = await api.post(
            "/api/devices/bob/oee-1/telemetry", headers=ALICE, json=_message(1, now)
        )
        assert other.status_code == 403
        anonymous = await api.post(url, json=_message(1, now, oee=1.0))
        assert anonymous.status_code == 401
        wrong_device = {**_message(1, now, oee=1.0), "device": "oee-2"}
        answer = await api.post(url, headers=ALICE, json=[_message(0, now, oee=1.0), wrong_device])
        assert answer.status_code == 422 and "message 1" in answer.text and "oee-2" in answer.text
        no_version = {k: v for k, v in _message(1, now, oee=1.0).items() if k != "v"}
        assert "'v'" in (await api.post(url, headers=ALICE, json=no_version)).text
        broken = await api.post(url, headers=ALICE, content=b"[{" * 5000)
        assert broken.status_code == 422 and "not JSON" in broken.text
        assert (await api.post(url, headers=ALICE, json=[])).status_code == 422
        # nothing of the refused requests was stored
        assert (await api.get("/api/devices/alice/oee-1", headers=ALICE)).status_code == 404
