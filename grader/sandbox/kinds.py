"""How a submission's command is wrapped: bubblewrap, or the plain reaper without it.

Both get the same scrubbed environment and the same limits (set by the caller); they
differ in what the submission can see. Under bubblewrap it has its own PID, IPC and UTS
namespaces, a read-only view of the system, private /tmp, /dev/shm and /proc, the grader's
secrets and out folders hidden, and write access to its workspace alone. Loopback stays
shared so it reaches its endpoints. Without bubblewrap it sees what the grader's user sees.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from grader.sandbox import processes
from grader.sandbox.workspace import Workspace
from iiotlab.errors import IiotlabError

logger = logging.getLogger(__name__)
SandboxChoice = Literal["auto", "bubblewrap", "none"]
REAPER = Path(__file__).with_name("reaper.py")
PRIVATE_TMP_MB = 256
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


class SandboxUnavailableError(IiotlabError):
    """The sandbox that was asked for cannot run here."""


class Sandbox(Protocol):
    @property
    def name(self) -> str:
        """bubblewrap | none: recorded in result.json."""

    def argv(
        self, command: str, workspace: Workspace, cwd: Path, env: Mapping[str, str]
    ) -> list[str]:
        """The command line that runs `command` (a /bin/sh line) inside the sandbox."""

    def helpers(self, launcher: int) -> set[int]:
        """The sandbox's own processes: not signalled on a graceful stop."""

    def strays(self, workspace: Workspace) -> list[int]:
        """Processes of the run that may have left the launcher's tree."""


@dataclass(frozen=True)
class PlainSandbox:
    """No isolation beyond the scrubbed environment, the limits and the reaper's sweep."""

    name: str = "none"

    def argv(
        self, command: str, workspace: Workspace, cwd: Path, env: Mapping[str, str]
    ) -> list[str]:
        return [sys.executable, "-I", "-S", str(REAPER), "/bin/sh", "-c", command]

    def helpers(self, launcher: int) -> set[int]:
        return {launcher}

    def strays(self, workspace: Workspace) -> list[int]:
        # a process that killed the reaper left its tree; its environment still names
        # the run's private HOME (unless it exec'd with another environment)
        return processes.with_environment_entry(f"HOME={workspace.home}".encode())


@dataclass(frozen=True)
class BubblewrapSandbox:
    executable: str
    hidden: tuple[Path, ...] = ()
    name: str = "bubblewrap"

    def argv(
        self, command: str, workspace: Workspace, cwd: Path, env: Mapping[str, str]
    ) -> list[str]:
        args = [self.executable, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for private in PRIVATE_DIRS:
            args += ["--size", str(PRIVATE_TMP_MB * 2**20), "--tmpfs", private]
        for program in _programs_under_private_dirs(env.get("PATH", "")):
            args += ["--ro-bind", program, program]
        args += _hide(self.hidden)
        for folder in (workspace.cwd, workspace.state, workspace.home, workspace.tmp):
            args += ["--bind", str(folder), str(folder)]
        if workspace.output is not None:
            args += ["--bind", str(workspace.output), str(workspace.output)]
        for readable in (workspace.datasheet, workspace.ca_file, workspace.line):
            if readable is not None:
                args += ["--ro-bind", str(readable), str(readable)]
        args += [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
        ]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--chdir", str(cwd), "/bin/sh", "-c", command]

    def helpers(self, launcher: int) -> set[int]:
        # bwrap and the PID namespace's init it forks
        return {launcher, *processes.children_of(launcher)}

    def strays(self, workspace: Workspace) -> list[int]:
        return []  # the PID namespace ends with its init: nothing leaves it


def _programs_under_private_dirs(search_path: str) -> list[str]:
    """Python, iiotlab and PATH folders that live in /tmp & co: seen read-only, not hidden.

    A grader installed in a virtual environment under /tmp (or a checkout there) would
    otherwise hide its own interpreter and packages from the submission."""
    here = Path(__file__).resolve().parents[2]  # the folder holding the grader package
    candidates = [
        sys.prefix,
        sys.base_prefix,
        str(Path(sys.executable).resolve().parent),
        str(here),
    ]
    candidates += [p for p in search_path.split(os.pathsep) if p]
    found: list[str] = []
    for candidate in candidates:
        path = os.path.realpath(candidate)
        inside = any(path == d or path.startswith(d + "/") for d in PRIVATE_DIRS)
        if inside and os.path.isdir(path) and path not in found:
            found.append(path)
    return found


def _hide(paths: Iterable[Path]) -> list[str]:
    """Mounts that hide `paths`; a path inside another hidden folder is hidden with it."""
    unique = sorted(set(paths), key=lambda p: len(p.parts))
    args: list[str] = []
    hidden: list[Path] = []
    for path in unique:
        if any(path.is_relative_to(folder) for folder in hidden):
            continue  # (its parent is already an empty read-only folder: no mount point)
        if path.is_dir():  # an empty folder nobody may read or write (capabilities dropped)
            args += ["--perms", "0000", "--tmpfs", str(path), "--remount-ro", str(path)]
            hidden.append(path)
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


@functools.cache
def bubblewrap_problem() -> str | None:
    """None when bubblewrap runs here, else why not (checked once per process)."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bubblewrap is not installed (Debian package 'bubblewrap')"
    try:
        probe = subprocess.run(
            [
                executable,
                "--ro-bind",
                "/",
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--unshare-pid",
                "--die-with-parent",
                "true",
            ],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not start: {exc}"
    if probe.returncode != 0:
        return (
            "bubblewrap cannot create namespaces here: "
            + probe.stderr.decode("utf-8", "replace").strip()[:300]
        )
    return None


def choose_sandbox(choice: SandboxChoice, hidden: Iterable[Path]) -> Sandbox:
    """The sandbox for `choice`; 'bubblewrap' refuses to fall back, 'auto' warns when it does."""
    if choice == "none":
        return PlainSandbox()
    problem = bubblewrap_problem()
    if problem is None:
        executable = shutil.which("bwrap")
        assert executable is not None
        return BubblewrapSandbox(executable, tuple(p.resolve() for p in hidden))
    if choice == "bubblewrap":
        raise SandboxUnavailableError(f"this grading needs the bubblewrap sandbox and {problem}")
    logger.warning(
        "grading WITHOUT a sandbox (%s): the submission can read what this user can read; "
        "install bubblewrap for graded work",
        problem,
    )
    return PlainSandbox()
