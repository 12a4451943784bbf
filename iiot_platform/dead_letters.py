"""Dead letters: messages the platform refused, with why, in platform.sqlite.

Bounded three ways so one tenant's junk harms only that tenant: a cap per tenant (its
oldest go first), a cap on the whole table (the tenant holding the most loses its oldest),
and a bounded payload prefix per letter (`size` keeps the size received). Listings carry
no payloads and are paged by count and by bytes; a payload is read one letter at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from iiot_platform.database import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, device TEXT NOT NULL,
    topic TEXT NOT NULL, received_ms INTEGER NOT NULL, reason TEXT NOT NULL,
    payload BLOB NOT NULL, size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant, id);
"""
PREVIEW_BYTES = 120  # of the payload, in a listing
_ENTRY_OVERHEAD = 200  # JSON keys and numbers of one listed letter, roughly


@dataclass(frozen=True)
class DeadLetter:
    """A refused message: why, and the bytes received (a prefix when `size` is larger)."""

    tenant: str
    device: str
    topic: str
    received_ms: int
    reason: str
    payload: bytes
    size: int = 0
    id: int = 0


@dataclass(frozen=True)
class DeadLetterSummary:
    """A dead letter in a listing: no payload, a short preview of it."""

    id: int
    tenant: str
    device: str
    topic: str
    received_ms: int
    reason: str
    size: int
    kept: int
    preview: bytes

    def listed_bytes(self) -> int:
        """About how many bytes this letter takes in a JSON listing."""
        text = len(self.tenant) + len(self.device) + len(self.topic) + len(self.reason)
        return _ENTRY_OVERHEAD + 2 * text + 4 * len(self.preview)


@dataclass(frozen=True)
class DeadLetterPage:
    letters: list[DeadLetterSummary]
    next_before: int | None  # pass as `before` for the next page; None: no more


@dataclass(frozen=True)
class DeadLetterLimits:
    total: int = 50_000
    per_tenant: int = 1000
    payload_bytes: int = 16 * 1024


def migrate(connection: sqlite3.Connection) -> None:
    """Files written before `size` existed get the column, filled from the payload."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(dead_letters)")}
    if "size" not in columns:
        connection.execute("ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
        connection.execute("UPDATE dead_letters SET size = length(payload)")


class DeadLetterStore:
    """The dead_letters table of a SqliteDatabase that is already started."""

    def __init__(self, database: SqliteDatabase, limits: DeadLetterLimits) -> None:
        self._database = database
        self.limits = limits

    async def add(self, letters: Sequence[DeadLetter]) -> None:
        keep = self.limits.payload_bytes
        rows = [
            (
                d.tenant,
                d.device,
                d.topic,
                d.received_ms,
                d.reason,
                d.payload[:keep],
                max(d.size, len(d.payload)),
            )
            for d in letters
        ]
        if not rows:
            return
        tenants = sorted({d.tenant for d in letters})

        def write(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute("BEGIN")
                connection.executemany(
                    "INSERT INTO dead_letters (tenant, device, topic, received_ms, reason,"
                    " payload, size) VALUES (?,?,?,?,?,?,?)",
                    rows,
                )
                for tenant in tenants:
                    _cap_tenant(connection, tenant, self.limits.per_tenant)
                _cap_total(connection, self.limits.total)

        await self._database.run(write)

    async def page(
        self,
        tenant: str | None,
        limit: int = 100,
        before_id: int | None = None,
        max_bytes: int = 256 * 1024,
    ) -> DeadLetterPage:
        """Newest first, at most `limit` letters and about `max_bytes` (at least one)."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (
            "SELECT id, tenant, device, topic, received_ms, reason, size, length(payload),"
            f" substr(payload, 1, {PREVIEW_BYTES}) FROM dead_letters"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        )

        def read(connection: sqlite3.Connection) -> DeadLetterPage:
            letters: list[DeadLetterSummary] = []
            used = 0
            for id_, tenant_, device, topic, ms, reason, size, kept, preview in connection.execute(
                sql, (*params, limit + 1)
            ):
                letter = DeadLetterSummary(
                    id_, tenant_, device, topic, ms, reason, size, kept, bytes(preview or b"")
                )
                used += letter.listed_bytes()
                if len(letters) == limit or (letters and used > max_bytes):
                    return DeadLetterPage(letters, letters[-1].id)
                letters.append(letter)
            return DeadLetterPage(letters, None)

        return await self._database.run(read)

    async def get(self, letter_id: int) -> DeadLetter | None:
        def read(connection: sqlite3.Connection) -> DeadLetter | None:
            row = connection.execute(
                "SELECT tenant, device, topic, received_ms, reason, payload, size, id"
                " FROM dead_letters WHERE id = ?",
                (letter_id,),
            ).fetchone()
            if row is None:
                return None
            tenant, device, topic, received_ms, reason, payload, size, id_ = row
            return DeadLetter(tenant, device, topic, received_ms, reason, bytes(payload), size, id_)

        return await self._database.run(read)

    async def count(self, tenant: str | None) -> int:
        def read(connection: sqlite3.Connection) -> int:
            if tenant is None:
                cursor = connection.execute("SELECT COUNT(*) FROM dead_letters")
            else:
                cursor = connection.execute(
                    "SELECT COUNT(*) FROM dead_letters WHERE tenant = ?", (tenant,)
                )
            return int(cursor.fetchone()[0])

        return await self._database.run(read)


def _cap_tenant(connection: sqlite3.Connection, tenant: str, limit: int) -> None:
    """Keep the tenant's `limit` newest letters."""
    row = connection.execute(
        "SELECT id FROM dead_letters WHERE tenant = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
        (tenant, limit),
    ).fetchone()
    if row is not None:
        connection.execute(
            "DELETE FROM dead_letters WHERE tenant = ? AND id <= ?", (tenant, row[0])
        )


def _cap_total(connection: sqlite3.Connection, limit: int) -> None:
    """Over the total: the tenant holding the most letters loses its oldest, so a tenant
    within its share never loses letters to another's junk."""
    excess = int(connection.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]) - limit
    while excess > 0:
        tenant, held = connection.execute(
            "SELECT tenant, COUNT(*) AS held FROM dead_letters GROUP BY tenant"
            " ORDER BY held DESC LIMIT 1"
        ).fetchone()
        dropped = min(excess, int(held))
        connection.execute(
            "DELETE FROM dead_letters WHERE id IN"
            " (SELECT id FROM dead_letters WHERE tenant = ? ORDER BY id LIMIT ?)",
            (tenant, dropped),
        )
        excess -= dropped
