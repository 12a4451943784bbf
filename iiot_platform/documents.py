"""Platform metadata (devices, rules, alarms, commands, identifiers, tokens, dead letters).

Small, JSON-shaped records live in one SQLite file whatever the time-series store is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iiot_platform.database import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_by_tenant ON documents (kind, tenant);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, device TEXT NOT NULL,
    topic TEXT NOT NULL, received_ms INTEGER NOT NULL, reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant, id);
"""


@dataclass(frozen=True)
class DeadLetter:
    """A message the platform refused, with why and the exact bytes received."""

    tenant: str
    device: str
    topic: str
    received_ms: int
    reason: str
    payload: bytes
    id: int = 0


class DocumentStore:
    """JSON documents keyed by (kind, id), each owned by a tenant; and dead letters."""

    def __init__(self, path: Path, dead_letter_limit: int = 10_000) -> None:
        self._database = SqliteDatabase(path, SCHEMA)
        self._dead_letter_limit = dead_letter_limit

    async def start(self) -> None:
        await self._database.start()

    async def stop(self) -> None:
        await self._database.stop()

    async def put_many(self, kind: str, docs: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Insert or replace (id, tenant, doc) documents of one kind."""
        rows = [(kind, id_, tenant, json.dumps(doc)) for id_, tenant, doc in docs]
        if not rows:
            return

        def write(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute("BEGIN")
                connection.executemany("INSERT OR REPLACE INTO documents VALUES (?,?,?,?)", rows)

        await self._database.run(write)

    async def put(self, kind: str, id_: str, tenant: str, doc: dict[str, Any]) -> None:
        await self.put_many(kind, [(id_, tenant, doc)])

    async def delete(self, kind: str, id_: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, id_))

        await self._database.run(write)

    async def all(self, kind: str) -> list[dict[str, Any]]:
        def read(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = connection.execute("SELECT doc FROM documents WHERE kind = ?", (kind,))
            return [json.loads(doc) for (doc,) in cursor]

        return await self._database.run(read)

    async def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = [(d.tenant, d.device, d.topic, d.received_ms, d.reason, d.payload) for d in letters]
        if not rows:
            return
        limit = self._dead_letter_limit

        def write(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute("BEGIN")
                connection.executemany(
                    "INSERT INTO dead_letters (tenant, device, topic, received_ms, reason,"
                    " payload) VALUES (?,?,?,?,?,?)",
                    rows,
                )
                connection.execute(
                    "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?",
                    (limit,),
                )

        await self._database.run(write)

    async def dead_letters(
        self, tenant: str | None, limit: int = 100, before_id: int | None = None
    ) -> list[DeadLetter]:
        """Newest first; tenant None means every tenant."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (
            "SELECT id, tenant, device, topic, received_ms, reason, payload FROM dead_letters"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        )

        def read(connection: sqlite3.Connection) -> list[DeadLetter]:
            return [
                DeadLetter(t, d, topic, ms, reason, bytes(payload), id_)
                for id_, t, d, topic, ms, reason, payload in connection.execute(
                    sql, (*params, limit)
                )
            ]

        return await self._database.run(read)

    async def count_dead_letters(self, tenant: str | None) -> int:
        def read(connection: sqlite3.Connection) -> int:
            if tenant is None:
                cursor = connection.execute("SELECT COUNT(*) FROM dead_letters")
            else:
                cursor = connection.execute(
                    "SELECT COUNT(*) FROM dead_letters WHERE tenant = ?", (tenant,)
                )
            return int(cursor.fetchone()[0])

        return await self._database.run(read)
