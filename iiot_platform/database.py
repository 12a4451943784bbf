"""One SQLite connection served by one worker thread, so the event loop never blocks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteDatabase:
    """A WAL-mode SQLite file; `run(fn)` calls fn(connection) in the worker thread."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def start(self) -> None:
        if self._executor is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        await self.run(self._open)

    def _open(self, _: sqlite3.Connection | None) -> None:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(self._schema)
        self._connection = connection

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            raise RuntimeError(f"database {self.path} is not started")
        loop = asyncio.get_running_loop()

        def call() -> T:
            return function(self._connection)  # type: ignore[arg-type]

        return await loop.run_in_executor(self._executor, call)

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
