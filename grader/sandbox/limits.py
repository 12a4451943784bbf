"""Total limits of one run: processes, memory over all processes, log bytes, disk.

Per-process limits (address space, CPU seconds) are rlimits set when the command starts.
The totals are watched: `LimitGuard` samples the run's process tree and workspace a few
times a second and ends the whole run when one is passed; the log is capped as it is
written. Each breach is a LimitEvent, reported in result.json in English and Chinese.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from grader.sandbox import processes
from grader.sandbox.workspace import Workspace

MIB = 2**20


class RunLimits(BaseModel):
    """lab.yaml `limits:`; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int = Field(
        default=1024, ge=64, description="resident memory of all processes together"
    )
    processes: int = Field(default=64, ge=2, le=4096, description="processes at once")
    cpu_s: int | None = Field(
        default=None, ge=1, description="CPU seconds per process (default: 3 x duration + 60)"
    )
    log_mb: int = Field(default=20, ge=1, description="gateway.log size; the rest is cut")
    disk_mb: int = Field(default=256, ge=1, description="bytes in the state folder, HOME, TMPDIR")


@dataclass(frozen=True)
class LimitEvent:
    at_ms: int
    limit: str  # processes | memory | log | disk
    measured: int
    allowed: int

    @property
    def en(self) -> str:
        scale = 1 if self.limit == "processes" else MIB
        what = {
            "processes": "ran {m} processes at once; the limit is {a}",
            "memory": "used {m} MiB of memory in all its processes; the limit is {a} MiB",
            "log": "wrote more than {a} MiB of output; gateway.log was cut there",
            "disk": "wrote {m} MiB to its state folder, HOME and TMPDIR; the limit is {a} MiB",
        }[self.limit]
        text = what.format(m=self.measured // scale, a=self.allowed // scale)
        ended = "" if self.limit == "log" else " It was stopped."
        return f"Your gateway {text}.{ended}"

    @property
    def zh(self) -> str:
        scale = 1 if self.limit == "processes" else MIB
        what = {
            "processes": "同时运行了 {m} 个进程，上限为 {a} 个。已被停止。",
            "memory": "所有进程共占用 {m} MiB 内存，上限为 {a} MiB。已被停止。",
            "log": "输出超过 {a} MiB，gateway.log 在此处截断。",
            "disk": "在状态目录、HOME 和 TMPDIR 中写入了 {m} MiB，上限为 {a} MiB。已被停止。",
        }[self.limit]
        return "你的网关" + what.format(m=self.measured // scale, a=self.allowed // scale)

    def as_json(self) -> dict[str, object]:
        return {
            "at_ms": self.at_ms,
            "limit": self.limit,
            "measured": self.measured,
            "allowed": self.allowed,
            "en": self.en,
            "zh": self.zh,
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


class CappedLog:
    """gateway.log: appended across restarts, cut at `limit` bytes with a note."""

    def __init__(self, path: Path, limit: int, events: list[LimitEvent]) -> None:
        self.path, self.limit, self.events = path, limit, events
        self.written = path.stat().st_size if path.exists() else 0
        self.discarded = 0

    def note(self, text: str) -> None:
        with self.path.open("ab") as handle:
            handle.write(text.encode())

    async def drain(self, stream: asyncio.StreamReader) -> None:
        with self.path.open("ab") as handle:
            while chunk := await stream.read(65536):
                room = self.limit - self.written
                if room > 0:
                    handle.write(chunk[:room])
                    handle.flush()
                    self.written += min(room, len(chunk))
                if len(chunk) > room:
                    if self.discarded == 0:
                        self.events.append(LimitEvent(_now_ms(), "log", self.limit, self.limit))
                    self.discarded += len(chunk) - max(room, 0)
        if self.discarded:
            self.note(
                f"\n[iiotlab: gateway.log cut at {self.limit // MIB} MiB; "
                f"{self.discarded} bytes more were discarded]\n"
            )
            self.discarded = 0


class LimitGuard:
    """Samples a running command's process tree and workspace; ends it past a limit."""

    def __init__(
        self,
        limits: RunLimits,
        workspace: Workspace,
        events: list[LimitEvent],
        end_run: Callable[[], Awaitable[None]],
        interval_s: float = 0.2,
    ) -> None:
        self.limits, self.workspace, self.events = limits, workspace, events
        self.end_run, self.interval_s = end_run, interval_s
        self.peak_processes = 0
        self.peak_memory = 0

    def breach(self, launcher: int, helpers: set[int], tick: int) -> LimitEvent | None:
        pids = [p for p in processes.descendants(launcher) if p not in helpers]
        self.peak_processes = max(self.peak_processes, len(pids))
        if len(pids) > self.limits.processes:
            return LimitEvent(_now_ms(), "processes", len(pids), self.limits.processes)
        memory = processes.resident_bytes(pids)
        self.peak_memory = max(self.peak_memory, memory)
        if memory > self.limits.memory_mb * MIB:
            return LimitEvent(_now_ms(), "memory", memory, self.limits.memory_mb * MIB)
        if tick % 5 == 0:
            disk = self.workspace.disk_bytes()
            if disk > self.limits.disk_mb * MIB:
                return LimitEvent(_now_ms(), "disk", disk, self.limits.disk_mb * MIB)
        return None

    async def watch(self, launcher: int, helpers: Callable[[], set[int]]) -> None:
        tick = 0
        while True:
            event = await asyncio.to_thread(self.breach, launcher, helpers(), tick)
            if event is not None:
                self.events.append(event)
                await self.end_run()
                return
            tick += 1
            await asyncio.sleep(self.interval_s)
