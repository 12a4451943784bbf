"""SQLite time-series store: one WAL file, batched executemany, dedup by primary key.

One row per message (its metrics as JSON) keeps writes cheap: a message of 20 metrics is
one index entry, not 20. Series queries pick a metric with json_extract; a `latest` table
keeps each metric's newest value with its type.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from pydantic_core import to_json

from iiot_platform.database import SqliteDatabase
from iiot_platform.stores.base import (
    Aggregation,
    LatestValue,
    MetricValue,
    SeriesPoint,
    TelemetryRecord,
)
from iiotlab.lifecycle import Service

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    tenant TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    points INTEGER NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (tenant, device, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (tenant, device, ts);
CREATE TABLE IF NOT EXISTS latest (
    tenant TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, kind TEXT NOT NULL, num REAL, txt TEXT,
    PRIMARY KEY (tenant, device, metric)
) WITHOUT ROWID;
"""

_INSERT = "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_LATEST = """
INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, device, metric) DO UPDATE SET
    seq = excluded.seq, ts = excluded.ts, kind = excluded.kind, num = excluded.num,
    txt = excluded.txt
WHERE excluded.ts >= latest.ts
"""
_AGGREGATE_SQL = {"mean": "AVG(v)", "min": "MIN(v)", "max": "MAX(v)"}
_CHUNK = 500  # seqs per existence query (SQLite allows 999 parameters)

LatestRow = tuple[str, str, str, int, int, str, float | None, str | None]


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


def _json_value(json_type: str, value: object) -> MetricValue:
    """A value json_extract returned, typed again (JSON true/false come back as 1/0)."""
    if json_type in ("true", "false"):
        return bool(value)
    if json_type == "integer" and isinstance(value, int | float):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _json_path(metric: str) -> str:
    return '$."' + metric.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _new_records(
    connection: sqlite3.Connection, records: Sequence[TelemetryRecord]
) -> list[TelemetryRecord]:
    """Records whose (tenant, device, seq) is neither stored nor earlier in the batch."""
    by_device: dict[tuple[str, str], dict[int, TelemetryRecord]] = {}
    for record in records:
        by_device.setdefault((record.tenant, record.device), {}).setdefault(record.seq, record)
    fresh: list[TelemetryRecord] = []
    for (tenant, device), by_seq in by_device.items():
        seqs = list(by_seq)
        for index in range(0, len(seqs), _CHUNK):
            chunk = seqs[index : index + _CHUNK]
            marks = ",".join("?" * len(chunk))
            stored = connection.execute(
                f"SELECT seq FROM messages WHERE tenant = ? AND device = ? AND seq IN ({marks})",
                (tenant, device, *chunk),
            )
            for (seq,) in stored:
                del by_seq[seq]
        fresh.extend(by_seq.values())
    return fresh


def _latest_rows(records: Sequence[TelemetryRecord]) -> list[LatestRow]:
    """The newest value of each metric in the batch (by ts; the later record on a tie)."""
    newest: dict[tuple[str, str, str], LatestRow] = {}
    covered: dict[tuple[str, str], set[str]] = {}  # metrics that have their newest value
    # newest first: a metric's first value is its newest, and a record whose metrics all
    # have theirs is skipped whole (a set test, not a loop over its metrics)
    ordered = sorted(enumerate(records), key=lambda item: (item[1].ts, item[0]), reverse=True)
    for _, record in ordered:
        device = (record.tenant, record.device)
        seen = covered.setdefault(device, set())
        if seen.issuperset(record.metrics):
            continue
        for metric, value in record.metrics.items():
            if metric not in seen:
                seen.add(metric)
                key = (record.tenant, record.device, metric)
                newest[key] = (*key, record.seq, record.ts, *_encode(value))
    return list(newest.values())


class SqliteStore(Service):
    """The default store: a file in the platform's data folder."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self._database = SqliteDatabase(path, SCHEMA)

    async def start(self) -> None:
        await self._database.start()

    async def stop(self) -> None:
        await self._database.stop()

    async def write(self, records: Sequence[TelemetryRecord]) -> int:
        if not records:
            return 0

        def write(connection: sqlite3.Connection) -> int:
            with connection:
                connection.execute("BEGIN")
                fresh = _new_records(connection, records)
                # pydantic-core's encoder: ~7x json.dumps on 20 floats, and this thread
                # holds the GIL while it encodes (the same JSON values, compact, UTF-8)
                rows = [
                    (r.tenant, r.device, r.seq, r.ts, len(r.metrics), to_json(r.metrics).decode())
                    for r in fresh
                ]
                connection.executemany(_INSERT, rows)
                connection.executemany(_UPSERT_LATEST, _latest_rows(fresh))
            return sum(len(r.metrics) for r in fresh)

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
        limit: int | None = None,
    ) -> list[SeriesPoint]:
        value = "json_extract(metrics, ?) AS v, json_type(metrics, ?) AS t"
        source = f"(SELECT ts, seq, {value} FROM messages WHERE tenant = ? AND device = ?"
        source += " AND ts >= ? AND ts < ?)"
        path = _json_path(metric)
        params: tuple[object, ...] = (path, path, tenant, device, start_ms, end_ms)
        if interval_ms is None:
            sql = f"SELECT ts, t, v FROM {source} WHERE v IS NOT NULL ORDER BY ts, seq"
        elif aggregation == "last":
            sql = (
                f"SELECT (ts / {interval_ms}) * {interval_ms} AS b, t, v, MAX(ts)"
                f" FROM {source} WHERE v IS NOT NULL GROUP BY b ORDER BY b"
            )
        else:
            function = _AGGREGATE_SQL[aggregation]
            sql = (
                f"SELECT (ts / {interval_ms}) * {interval_ms} AS b, 'real', {function}"
                f" FROM {source} WHERE t IN ('integer', 'real', 'true', 'false')"
                " GROUP BY b ORDER BY b"
            )

        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, limit)

        def read(connection: sqlite3.Connection) -> list[SeriesPoint]:
            return [
                SeriesPoint(int(row[0]), _json_value(row[1], row[2]))
                for row in connection.execute(sql, params)
            ]

        return await self._database.run(read)

    async def count(self, tenant: str, device: str) -> int:
        def read(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "SELECT COALESCE(SUM(points), 0) FROM messages WHERE tenant = ? AND device = ?",
                (tenant, device),
            )
            return int(cursor.fetchone()[0])

        return await self._database.run(read)
