"""The gateway under test: the student's command in a subprocess, with limits.

It runs in its own session (so a kill reaches every child of a `run.sh`), in the
submission folder, with the DESIGN.md environment, an address-space limit and a CPU
limit, its output appended to one log file across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from grader.observation import GatewayExit


def _within_hard_limit(which: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft, hard) lowered to the grader's own hard limit (a `ulimit -v` in its shell):
    raising a hard limit is refused, and the refusal would stop every gateway from starting."""
    _, ceiling = resource.getrlimit(which)
    if ceiling == resource.RLIM_INFINITY:
        return soft, hard
    return min(soft, ceiling), min(hard, ceiling)


def _limits(memory_mb: int, cpu_s: int) -> Callable[[], None]:
    memory = memory_mb * 1024 * 1024
    address_space = _within_hard_limit(resource.RLIMIT_AS, memory, memory)
    cpu = _within_hard_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 5)

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, address_space)
        resource.setrlimit(resource.RLIMIT_CPU, cpu)

    return apply


class GatewayProcess:
    def __init__(
        self,
        command: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_file: Path,
        memory_mb: int = 1024,
        cpu_s: int = 600,
    ) -> None:
        self.command, self.cwd, self.env = command, cwd, dict(env)
        self.log_file, self.memory_mb, self.cpu_s = log_file, memory_mb, cpu_s
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._killing = False
        self.exits: list[GatewayExit] = []
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        environment = {**os.environ, **self.env}
        with self.log_file.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {self.command}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.command,
                cwd=self.cwd,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_limits(self.memory_mb, self.cpu_s),
            )
        self.starts += 1
        self._killing = False
        self._watch = asyncio.create_task(self._record_exit(self._process))

    async def _record_exit(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self.exits.append(GatewayExit(int(time.time() * 1000), code, self._killing))

    def _signal(self, sig: signal.Signals) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, sig)

    async def kill(self) -> None:
        """SIGKILL, as a power cut would: no chance to say goodbye (the Last Will fires)."""
        self._killing = True
        self._signal(signal.SIGKILL)
        await self._wait()

    async def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`. Safe to call twice."""
        if not self.running:
            await self._wait()
            return
        self._killing = True
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._wait(), grace_s)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self._wait()

    async def _wait(self) -> None:
        if self._watch is not None:
            await asyncio.shield(self._watch)
        # children of a run.sh may outlive the shell: make sure the group is gone
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
