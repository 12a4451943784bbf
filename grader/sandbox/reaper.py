"""The plain sandbox's supervisor: `python -I -S reaper.py CMD...` (standard library only).

It makes itself a child subreaper, so a process that double-forks or calls setsid is
re-parented to it and stays in the run's process tree. It forwards SIGTERM and SIGINT to
every process below it, and when the command ends it kills whatever the command left
behind, then exits with the command's status.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def _below(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(name))
    found, queue = [], list(children.get(root, ()))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def _signal_below(sig: int) -> None:
    for pid in _below(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: cannot become a child subreaper", file=sys.stderr)
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: _signal_below(number))
    status, ended = 0, False
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status, ended = os.waitstatus_to_exitcode(code), True
        if ended:  # what the command left behind ends with it, forks in flight included
            _signal_below(signal.SIGKILL)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
