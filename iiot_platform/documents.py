"""Platform metadata (devices, rules, alarms, commands, identifiers, tokens, dead letters).

Small, JSON-shaped records live in one SQLite file whatever the time-series store is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iiot_platform.database import SqliteDatabase
from iiot_platform.dead_letters import SCHEMA as DEAD_LETTER_SCHEMA
from iiot_platform.dead_letters import DeadLetterLimits, DeadLetterStore, migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_by_tenant ON documents (kind, tenant);
"""


class DocumentStore:
    """JSON documents keyed by (kind, id), each owned by a tenant; and the dead letters
    (`dead_letters`, in the same file)."""

    def __init__(self, path: Path, dead_letter_limits: DeadLetterLimits | None = None) -> None:
        self._database = SqliteDatabase(path, SCHEMA + DEAD_LETTER_SCHEMA)
        self.dead_letters = DeadLetterStore(
            self._database, dead_letter_limits or DeadLetterLimits()
        )

    async def start(self) -> None:
        await self._database.start()
        await self._database.run(migrate)

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
