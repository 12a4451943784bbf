"""A real cluster on this machine: `redis-server` on a free port and `iiotlab worker`s.

Used by the cluster tests and bench/cluster_grading.py. Redis keeps its data in a given
folder with `appendonly yes`, as docs/cluster.md configures it, so a restart keeps the
queue. Workers are real processes in their own process groups: `kill()` SIGKILLs the
whole group, as a grading machine that dies takes its pool processes with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


class RedisServer:
    """redis-server with appendonly persistence in `folder`, on a fixed free port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for(self.answers, 10, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """One redis command through redis-cli (an independent client)."""
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        done = subprocess.run(
            [cli, "-p", str(self.port), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as on a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


class Worker:
    """`iiotlab worker` as a real process in its own process group, logging to a file."""

    def __init__(
        self,
        broker: str,
        log: Path,
        *,
        concurrency: int = 2,
        visibility_timeout_s: float = 40,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        handle = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "iiotlab.cli",
                "worker",
                "--broker",
                broker,
                "--concurrency",
                str(concurrency),
                "--visibility-timeout",
                str(visibility_timeout_s),
            ],
            stdout=handle,
            stderr=handle,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        handle.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.text()}")
            return " ready." in self.text()

        wait_for(ready, timeout_s, f"the worker to be ready (log {self.log})")

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes, as when its machine dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _parents() -> dict[int, tuple[int, list[bytes]]]:
    """{pid: (parent pid, command line)} of every process on this machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        found[int(entry.name)] = (int(stat[stat.rfind(b")") + 2 :].split()[1]), command)
    return found


def grading_processes(worker: Worker) -> dict[int, int]:
    """{pid: pool process pid} of the `iiotlab grade` processes of this worker's pool."""
    table = _parents()
    return {
        pid: parent
        for pid, (parent, command) in table.items()
        if b"iiotlab.cli" in command
        and b"grade" in command
        and table.get(parent, (0, []))[0] == worker.process.pid
    }
