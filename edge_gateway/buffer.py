"""Store-and-forward buffer: an on-disk outbox of MQTT messages in SQLite (WAL).

Every telemetry message is written here before it is published and removed only after
the broker's PUBACK, so a broker outage, an unacknowledged publish or a gateway restart
loses nothing. The buffer also keeps the last telemetry `seq`, so numbering continues
across restarts.

Overflow: at `capacity` messages, `drop_oldest` (default) deletes the oldest message to
make room, `drop_newest` refuses the new one; either way `dropped` counts it (persisted).
A dropped message leaves a gap in `seq`, which is how the platform sees the loss.

Delivery is at-least-once: a crash after the PUBACK and before the delete sends that
message again on restart (with the same `seq`); the platform deduplicates on
(device, seq). Calls are short local transactions, run on the caller's thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

OverflowPolicy = Literal["drop_oldest", "drop_newest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    replayed INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class BufferedMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    replayed: bool
    created_ms: int


class StoreAndForwardBuffer:
    """`with StoreAndForwardBuffer(path, capacity=...) as buffer:` or open()/close()."""

    def __init__(
        self,
        path: str | Path,
        *,
        capacity: int = 1_000_000,
        overflow: OverflowPolicy = "drop_oldest",
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if overflow not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"overflow policy {overflow!r} is not drop_oldest or drop_newest")
        self.path = Path(path)
        self.capacity = capacity
        self.overflow: OverflowPolicy = overflow
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._last_seq = -1
        self._dropped = 0

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        self._count = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._last_seq = self._meta("last_seq", -1)
        self._dropped = self._meta("dropped", 0)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def __enter__(self) -> StoreAndForwardBuffer:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the buffer is not open; call open() first")
        return self._db

    # -- counters ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def dropped(self) -> int:
        """Messages lost to the overflow policy, over the buffer's whole life."""
        return self._dropped

    @property
    def last_seq(self) -> int:
        """The last telemetry seq handed out (-1 before the first)."""
        return self._last_seq

    def next_seq(self) -> int:
        """Reserve the next seq; persisted with the next append()."""
        self._last_seq += 1
        return self._last_seq

    # -- writing -----------------------------------------------------------------------
    def append(
        self, topic: str, payload: bytes, *, qos: int = 1, replayed: bool = False
    ) -> int | None:
        """Store one message; its id, or None when the overflow policy refused it."""
        ids = self.append_many([(topic, payload)], qos=qos, replayed=replayed)
        return ids[0] if ids else None

    def append_many(
        self, messages: Iterable[tuple[str, bytes]], *, qos: int = 1, replayed: bool = False
    ) -> list[int]:
        """Store messages in one transaction, applying the overflow policy to each."""
        now = int(time.time() * 1000)
        db = self.db
        ids: list[int] = []
        dropped = 0
        db.execute("BEGIN")
        try:
            for topic, payload in messages:
                if self._count >= self.capacity:
                    dropped += 1
                    if self.overflow == "drop_newest":
                        continue
                    db.execute("DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)")
                    self._count -= 1
                cursor = db.execute(
                    "INSERT INTO outbox (topic, payload, qos, replayed, created_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (topic, payload, qos, int(replayed), now),
                )
                ids.append(int(cursor.lastrowid or 0))
                self._count += 1
            self._dropped += dropped
            self._set_meta("dropped", self._dropped)
            self._set_meta("last_seq", self._last_seq)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._count = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self._dropped -= dropped
            raise
        return ids

    # -- reading and acknowledging -------------------------------------------------------
    def peek(self, limit: int = 100, *, after_id: int = 0) -> list[BufferedMessage]:
        """The oldest messages (id > after_id), oldest first; they stay until remove()."""
        rows = self.db.execute(
            "SELECT id, topic, payload, qos, replayed, created_ms FROM outbox "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [
            BufferedMessage(row[0], row[1], bytes(row[2]), row[3], bool(row[4]), row[5])
            for row in rows
        ]

    def remove(self, ids: Iterable[int]) -> None:
        """Forget messages the broker acknowledged (one transaction; runs of consecutive
        ids, the usual case while draining, go as one range each)."""
        ranges = _runs(sorted(set(ids)))
        if not ranges:
            return
        db = self.db
        db.execute("BEGIN")
        try:
            before = db.total_changes
            db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", ranges)
            self._count -= db.total_changes - before
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def mark_replayed(self) -> int:
        """Flag every stored message as replayed (it missed its live send); how many."""
        cursor = self.db.execute("UPDATE outbox SET replayed = 1 WHERE replayed = 0")
        return cursor.rowcount

    # -- meta ----------------------------------------------------------------------------
    def _meta(self, key: str, default: int) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, last) runs of consecutive ids."""
    runs: list[tuple[int, int]] = []
    for message_id in ids:
        if runs and runs[-1][1] == message_id - 1:
            runs[-1] = (runs[-1][0], message_id)
        else:
            runs.append((message_id, message_id))
    return runs
