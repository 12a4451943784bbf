"""The processes of one run, read from /proc: find them, measure them, end them.

A run's processes are the descendants of the process the grader launched (bubblewrap or
the reaper). Both keep escapees in that tree: bubblewrap's PID namespace, the reaper as
a child subreaper. Nothing here needs a library: /proc is the interface.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _parent_of(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]


def descendants(root: int) -> list[int]:
    """Every living process below `root` (not `root` itself), parents before children."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        parent = _parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    queue = list(children.get(root, ()))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def children_of(pid: int) -> list[int]:
    return [p for p in all_pids() if _parent_of(p) == pid]


def resident_bytes(pids: Iterable[int]) -> int:
    """Resident memory of the processes, summed (a process gone meanwhile counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = (PROC / str(pid) / "statm").read_text().split()
        except OSError:
            continue
        total += int(fields[1]) * PAGE_SIZE
    return total


def with_environment_entry(entry: bytes) -> list[int]:
    """Processes whose initial environment holds `entry` (e.g. b"HOME=/tmp/run/home")."""
    found = []
    for pid in all_pids():
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if entry in environ.split(b"\0"):
            found.append(pid)
    return found


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
