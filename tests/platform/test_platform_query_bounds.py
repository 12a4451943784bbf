"""Out-of-range query and path values answer 422, never 500, on every route."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.routing import APIRoute
from platform_helpers import RunningApp, service_of

from iiot_platform.ingest import RawMessage

pytestmark = pytest.mark.unit

HOSTILE_NUMBERS = ("9" * 30, "-" + "9" * 30, str(2**63), str(2**64), "1e400", "nan", "inf", "-1")
KNOWN = {
    "tenant": "demo",
    "device": "tank-1",
    "metric": "level",
    "letter_id": "1",
    "alarm_id": "x",
    "rule_id": "x",
    "command_id": "x",
    "identifier": "88.1/x",
}


async def _seed(app: object) -> None:
    now = int(time.time() * 1000)
    body = f'{{"v":1,"device":"tank-1","seq":1,"ts":{now},"metrics":{{"level":1.0}}}}'
    await service_of(app).ingestor.process(  # type: ignore[arg-type]
        [
            RawMessage("iiot/demo/tank-1/telemetry", body.encode(), now),
            RawMessage("iiot/demo/tank-1/telemetry", b"junk", now),
        ]
    )


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: values[m.group(1)], path)


async def test_out_of_range_values_are_422_on_every_route(running_app: RunningApp) -> None:
    async with running_app() as (app, api):
        await _seed(app)
        checked = 0
        for route in app.routes:
            if not isinstance(route, APIRoute) or not route.path.startswith("/api"):
                continue
            if route.path == "/api/events":  # endless stream: test_platform_events covers it
                continue
            names = [p.name for p in route.dependant.query_params if p.name != "token"]
            path_names = [p.name for p in route.dependant.path_params]
            for method in sorted(route.methods or ()):
                for target in names + path_names:
                    for value in HOSTILE_NUMBERS:
                        values = dict(KNOWN, **{target: value})
                        path = _fill(route.path, values)
                        query = {n: values.get(n, value) for n in names if n == target}
                        if "metric" in names and target != "metric":
                            query["metric"] = "level"
                        answer = await api.request(method, path, params=query, json={})
                        checked += 1
                        where = f"{method} {route.path} {target}={value[:12]}"
                        assert answer.status_code < 500, (where, answer.text[:300])
        assert checked > 100


@pytest.mark.parametrize(
    "query",
    [
        "start=" + str(2**64),
        "end=" + "9" * 30,
        "start=-1",
        "interval=" + str(2**70),
        "interval=0",
        "metric=" + "m" * 65,
    ],
)
async def test_series_bounds(running_app: RunningApp, query: str) -> None:
    async with running_app() as (app, api):
        await _seed(app)
        answer = await api.get(f"/api/devices/demo/tank-1/series?metric=level&{query}")
        assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/dead-letters?before=" + str(2**63),
        "/api/dead-letters?before=0",
        "/api/dead-letters?limit=" + str(2**64),
        "/api/dead-letters/" + str(2**64),
        "/api/dead-letters/0",
    ],
)
async def test_dead_letter_bounds(running_app: RunningApp, path: str) -> None:
    async with running_app() as (_, api):
        assert (await api.get(path)).status_code == 422


async def test_series_is_bounded_by_max_series_points(running_app: RunningApp) -> None:
    async with running_app(max_series_points=5) as (app, api):
        now = int(time.time() * 1000)
        messages = [
            RawMessage(
                "iiot/demo/tank-1/telemetry",
                f'{{"v":1,"device":"tank-1","seq":{s},"ts":{now - 100 + s},'
                f'"metrics":{{"level":{s}.0}}}}'.encode(),
                now,
            )
            for s in range(1, 21)
        ]
        await service_of(app).ingestor.process(messages)
        series = (await api.get("/api/devices/demo/tank-1/series?metric=level")).json()
        assert [p[1] for p in series["points"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert series["truncated"] is True
        whole = await api.get("/api/devices/demo/tank-1/series?metric=level&interval=60000")
        assert whole.json()["truncated"] is False
