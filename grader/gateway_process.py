"""The gateway under test: the student's command in the sandbox, with limits and a sweep.

The command runs in a Sandbox (bubblewrap, or the plain reaper) with the DESIGN.md
environment and nothing else, in its workspace, under per-process rlimits (address space,
CPU) and the run's total limits (LimitGuard). Its output goes through a pipe to one capped
log across restarts. Every stop ends every process of the run, escapees included, and
waits until none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from grader.observation import GatewayExit
from grader.sandbox import processes
from grader.sandbox.kinds import Sandbox
from grader.sandbox.limits import CappedLog, LimitEvent, LimitGuard, RunLimits
from grader.sandbox.workspace import Workspace

SWEEP_TIMEOUT_S = 10.0


class SweepError(RuntimeError):
    """A process of the submission survived every SIGKILL: the run is not gradable."""


def _within_hard_limit(which: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft, hard) lowered to the grader's own hard limit (a `ulimit -v` in its shell):
    raising a hard limit is refused, and the refusal would stop every gateway from starting."""
    _, ceiling = resource.getrlimit(which)
    if ceiling == resource.RLIM_INFINITY:
        return soft, hard
    return min(soft, ceiling), min(hard, ceiling)


def _rlimits(memory_mb: int, cpu_s: int) -> Callable[[], None]:
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
        sandbox: Sandbox,
        workspace: Workspace,
        cwd: Path,
        env: Mapping[str, str],
        log_file: Path,
        limits: RunLimits,
        cpu_s: int = 600,
    ) -> None:
        self.command, self.sandbox, self.workspace = command, sandbox, workspace
        self.cwd, self.env, self.limits = cwd, dict(env), limits
        self.cpu_s = limits.cpu_s or cpu_s
        self.limit_events: list[LimitEvent] = []
        self._log = CappedLog(log_file, limits.log_mb * 2**20, self.limit_events)
        self._guard = LimitGuard(limits, workspace, self.limit_events, self._end_for_limit)
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._killing = False
        self.exits: list[GatewayExit] = []
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def peak(self) -> dict[str, int]:
        return {
            "processes": self._guard.peak_processes,
            "memory_mb": self._guard.peak_memory // 2**20,
        }

    async def start(self) -> None:
        if self.running:
            return
        await self._wait()  # what a crashed start left: its log, its guard, its strays
        self._log.note(f"--- start {self.starts + 1}: {self.command}\n")
        argv = self.sandbox.argv(self.command, self.workspace, self.cwd, self.env)
        self._process = process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_rlimits(self.limits.memory_mb, self.cpu_s),
        )
        self.starts += 1
        self._killing = False
        assert process.stdout is not None
        self._tasks = [
            asyncio.create_task(self._record_exit(process)),
            asyncio.create_task(self._log.drain(process.stdout)),
            asyncio.create_task(
                self._guard.watch(process.pid, lambda: self.sandbox.helpers(process.pid))
            ),
        ]

    async def _record_exit(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self.exits.append(GatewayExit(int(time.time() * 1000), code, self._killing))

    async def _end_for_limit(self) -> None:
        """A limit was passed: the run ends as a crash of the gateway (not the grader's kill).

        Runs in the guard's task, so it only kills; the next stop() or start() waits."""
        while self._process is not None and processes.descendants(self._process.pid):
            self._sweep_now()
            await asyncio.sleep(0.05)

    def _sweep_now(self) -> None:
        """SIGKILL below the launcher first: a child forked meanwhile stays in the tree."""
        if self._process is not None:
            processes.signal_all(processes.descendants(self._process.pid), signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL to every process, as a power cut would: no goodbye (the Last Will fires)."""
        self._killing = True
        self._sweep_now()
        await self._wait()

    async def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM to the gateway's processes, SIGKILL to all after `grace_s`. Safe twice."""
        if self.running and self._process is not None:
            self._killing = True
            launcher = self._process.pid
            helpers = self.sandbox.helpers(launcher)
            targets = [p for p in processes.descendants(launcher) if p not in helpers]
            processes.signal_all(targets, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited()), grace_s)
            self._sweep_now()
        await self._wait()

    async def _exited(self) -> None:
        if self._process is not None:
            await self._process.wait()

    async def _wait(self) -> None:
        """Until the launcher and every process below it are gone, and the log is drained."""
        if self._process is None:
            return
        launcher = self._process.pid
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while True:
            left = processes.descendants(launcher) + self.sandbox.strays(self.workspace)
            if not left and self._process.returncode is not None:
                break
            if time.monotonic() > deadline:
                raise SweepError(f"processes {left} of the gateway did not end")
            processes.signal_all(left or [launcher], signal.SIGKILL)
            await asyncio.sleep(0.05)
        tasks, self._tasks = self._tasks, []
        for task in tasks[2:]:  # the guard
            task.cancel()
        await asyncio.gather(
            *(t for t in tasks if t is not asyncio.current_task()), return_exceptions=True
        )
