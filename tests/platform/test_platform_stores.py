"""One suite for every time-series store: SQLite always, InfluxDB when IIOTLAB_INFLUX_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iiot_platform.stores import TelemetryRecord, TelemetryStore
from iiot_platform.stores.influx import InfluxStore
from iiot_platform.stores.sqlite import SqliteStore

pytestmark = pytest.mark.unit

T0 = 1_763_719_200_000


def _influx(tmp_path: Path) -> TelemetryStore:
    url = os.environ.get("IIOTLAB_INFLUX_URL")
    if not url:
        pytest.skip("InfluxDB store: set IIOTLAB_INFLUX_URL (and IIOTLAB_INFLUX_TOKEN)")
    return InfluxStore(
        url=url,
        token=os.environ.get("IIOTLAB_INFLUX_TOKEN", ""),
        org=os.environ.get("IIOTLAB_INFLUX_ORG", "iiotlab"),
        bucket=os.environ.get("IIOTLAB_INFLUX_BUCKET", "iiotlab"),
    )


@pytest.fixture(params=["sqlite", "influx"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TelemetryStore]:
    if request.param == "sqlite":
        implementation: TelemetryStore = SqliteStore(tmp_path / "t.sqlite")
    else:
        implementation = _influx(tmp_path)
    await implementation.start()
    try:
        yield implementation
    finally:
        await implementation.stop()
        await implementation.stop()  # safe twice


@pytest.fixture
def tenant() -> str:
    return "t" + uuid.uuid4().hex[:8]  # a fresh tenant keeps a shared InfluxDB bucket clean


def _records(tenant: str, count: int, start_seq: int = 0) -> list[TelemetryRecord]:
    return [
        TelemetryRecord(
            tenant,
            "tank-1",
            seq,
            T0 + seq * 100,
            {"level": float(seq), "pump_on": seq % 2 == 0, "mode": f"m{seq % 3}", "count": seq},
        )
        for seq in range(start_seq, start_seq + count)
    ]


async def test_write_and_latest_keep_types(store: TelemetryStore, tenant: str) -> None:
    await store.write(_records(tenant, 10))
    latest = await store.latest(tenant, "tank-1")
    assert set(latest) == {"level", "pump_on", "mode", "count"}
    assert latest["level"].value == 9.0 and latest["level"].ts == T0 + 900
    assert latest["pump_on"].value is False
    assert latest["mode"].value == "m0"
    assert latest["count"].value == 9
    assert await store.count(tenant, "tank-1") == 40


async def test_duplicates_are_stored_once(store: TelemetryStore, tenant: str) -> None:
    await store.write(_records(tenant, 20))
    await store.write(_records(tenant, 20))
    await store.write(_records(tenant, 5, start_seq=18))
    assert await store.count(tenant, "tank-1") == 23 * 4
    points = await store.series(tenant, "tank-1", "level", T0, T0 + 10_000)
    assert [p.value for p in points] == [float(i) for i in range(23)]


async def test_aggregations_per_interval(store: TelemetryStore, tenant: str) -> None:
    await store.write(_records(tenant, 20))  # level 0..19, one every 100 ms
    end = T0 + 2000
    mean = await store.series(tenant, "tank-1", "level", T0, end, 1000, "mean")
    assert [(p.ts, p.value) for p in mean] == [(T0, 4.5), (T0 + 1000, 14.5)]
    low = await store.series(tenant, "tank-1", "level", T0, end, 1000, "min")
    high = await store.series(tenant, "tank-1", "level", T0, end, 1000, "max")
    last = await store.series(tenant, "tank-1", "level", T0, end, 1000, "last")
    assert [p.value for p in low] == [0.0, 10.0]
    assert [p.value for p in high] == [9.0, 19.0]
    assert [p.value for p in last] == [9.0, 19.0]


async def test_time_range_is_half_open_and_tenant_scoped(
    store: TelemetryStore, tenant: str
) -> None:
    await store.write(_records(tenant, 10))
    await store.write(_records(tenant + "x", 10))
    points = await store.series(tenant, "tank-1", "level", T0 + 200, T0 + 500)
    assert [p.ts for p in points] == [T0 + 200, T0 + 300, T0 + 400]
    assert await store.latest(tenant, "other") == {}
    assert await store.count(tenant, "tank-1") == 40


async def test_empty_write_is_a_no_op(store: TelemetryStore, tenant: str) -> None:
    assert await store.write([]) == 0
    assert await store.count(tenant, "tank-1") == 0


async def test_latest_is_the_newest_sample_of_each_metric_whatever_the_batch_order(
    store: TelemetryStore, tenant: str
) -> None:
    def record(seq: int, ts: int, **metrics: float) -> TelemetryRecord:
        return TelemetryRecord(tenant, "tank-1", seq, T0 + ts, metrics)

    batch = [
        record(1, 300, level=3.0),  # newest level, first in the batch
        record(2, 100, level=1.0, flow=10.0),  # flow only here: its latest
        record(3, 200, level=2.0, temp=20.0),
        record(4, 200, temp=21.0),  # same ts as seq 3: the later record wins
    ]
    await store.write(batch)
    latest = await store.latest(tenant, "tank-1")
    assert {m: (v.value, v.ts - T0) for m, v in latest.items()} == {
        "level": (3.0, 300),
        "flow": (10.0, 100),
        "temp": (21.0, 200),
    }
