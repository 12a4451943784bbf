"""SQLite time-series store: one WAL file, batched executemany, dedup by primary key."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from iiot_platform.database import SqliteDatabase
from iiot_platform.stores.base import (
    Aggregation,
    LatestValue,
    MetricValue,
    SeriesPoint,
    TelemetryRecord,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    tenant TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, kind TEXT NOT NULL, num REAL, txt TEXT,
    PRIMARY KEY (tenant, device, metric, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (tenant, device, metric, ts);
CREATE TABLE IF NOT EXISTS latest (
    tenant TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, kind TEXT NOT NULL, num REAL, txt TEXT,
    PRIMARY KEY (tenant, device, metric)
) WITHOUT ROWID;
"""

_INSERT = "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_LATEST = """
INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, device, metric) DO UPDATE SET
    seq = excluded.seq, ts = excluded.ts, kind = excluded.kind, num = excluded.num,
    txt = excluded.txt
WHERE excluded.ts >= latest.ts
"""
_AGGREGATE_SQL = {"mean": "AVG(num)", "min": "MIN(num)", "max": "MAX(num)"}

Row = tuple[str, str, str, int, int, str, float | None, str | None]


def _encode(value: MetricValue) -> tuple[str, float | None, str | None]:
    if isinstance(value, bool):
        return "b", float(value), None
    if isinstance(value, int):
        return "i", float(value), None
    if isinstance(value, float):
        return "f", value, None
    return "s", None, value


def _decode(kind: str, num: float | None, txt: str | None) -> MetricValue:
    if kind == "b":
        return bool(num)
    if kind == "i" and num is not None:
        return int(num)
    if kind == "f" and num is not None:
        return num
    return txt or ""


def _rows(records: Sequence[TelemetryRecord]) -> tuple[list[Row], list[Row]]:
    rows: list[Row] = []
    newest: dict[tuple[str, str, str], Row] = {}
    for record in records:
        for metric, value in record.metrics.items():
            row = (record.tenant, record.device, metric, record.seq, record.ts, *_encode(value))
            rows.append(row)
            key = (record.tenant, record.device, metric)
            previous = newest.get(key)
            if previous is None or previous[4] <= record.ts:
                newest[key] = row
    return rows, list(newest.values())


class SqliteStore:
    """The default store: a file in the platform's data folder."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self._database = SqliteDatabase(path, SCHEMA)

    async def start(self) -> None:
        await self._database.start()

    async def stop(self) -> None:
        await self._database.stop()

    async def __aenter__(self) -> SqliteStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def write(self, records: Sequence[TelemetryRecord]) -> int:
        if not records:
            return 0

        def write(connection: sqlite3.Connection) -> int:
            rows, newest = _rows(records)
            with connection:
                connection.execute("BEGIN")
                stored = connection.executemany(_INSERT, rows).rowcount
                connection.executemany(_UPSERT_LATEST, newest)
            return stored

        return await self._database.run(write)

    async def latest(self, tenant: str, device: str) -> dict[str, LatestValue]:
        def read(connection: sqlite3.Connection) -> dict[str, LatestValue]:
            cursor = connection.execute(
                "SELECT metric, seq, ts, kind, num, txt FROM latest"
                " WHERE tenant = ? AND device = ? ORDER BY metric",
                (tenant, device),
            )
            return {
                metric: LatestValue(metric, _decode(kind, num, txt), ts, seq)
                for metric, seq, ts, kind, num, txt in cursor
            }

        return await self._database.run(read)

    async def series(
        self,
        tenant: str,
        device: str,
        metric: str,
        start_ms: int,
        end_ms: int,
        interval_ms: int | None = None,
        aggregation: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        where = "tenant = ? AND device = ? AND metric = ? AND ts >= ? AND ts < ?"
        params: tuple[object, ...] = (tenant, device, metric, start_ms, end_ms)
        if interval_ms is None:
            sql = f"SELECT ts, kind, num, txt FROM points WHERE {where} ORDER BY ts, seq"
        elif aggregation == "last":
            sql = (
                f"SELECT (ts / {interval_ms}) * {interval_ms} AS b, kind, num, txt, MAX(ts)"
                f" FROM points WHERE {where} GROUP BY b ORDER BY b"
            )
        else:
            function = _AGGREGATE_SQL[aggregation]
            sql = (
                f"SELECT (ts / {interval_ms}) * {interval_ms} AS b, 'f', {function}, NULL"
                f" FROM points WHERE {where} AND num IS NOT NULL GROUP BY b ORDER BY b"
            )

        def read(connection: sqlite3.Connection) -> list[SeriesPoint]:
            return [
                SeriesPoint(int(row[0]), _decode(row[1], row[2], row[3]))
                for row in connection.execute(sql, params)
            ]

        return await self._database.run(read)

    async def count(self, tenant: str, device: str) -> int:
        def read(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "SELECT COUNT(*) FROM points WHERE tenant = ? AND device = ?", (tenant, device)
            )
            return int(cursor.fetchone()[0])

        return await self._database.run(read)
