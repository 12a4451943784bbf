"""A student's submission: how to start their gateway, and (security labs) their broker policy.

Convention: a submission is a folder. It holds either `gateway.cmd` (one shell command line,
run with /bin/sh in the folder; `#` lines are comments) or `run.sh` (run as `sh run.sh`).
Security labs may also read a broker policy file named by the lab (`broker.yaml`).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iiotlab.errors import ConfigError

COMMAND_FILE = "gateway.cmd"
SCRIPT_FILE = "run.sh"


MAX_SUBMISSION_BYTES = 200 * 1024 * 1024
MAX_SUBMISSION_FILES = 20_000


class SubmissionError(ConfigError):
    """The student's submission is wrong: graded 0 with this reason, never a missing result."""


class NoSubmissionError(SubmissionError):
    """The folder holds no gateway command."""


def check_size(folder: Path) -> None:
    """A submission folder is source code, not a virtual environment or a data set."""
    total, files = 0, 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            files += 1
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
            if total > MAX_SUBMISSION_BYTES or files > MAX_SUBMISSION_FILES:
                raise SubmissionError(
                    "the submission folder is too large",
                    file=folder,
                    expected=f"at most {MAX_SUBMISSION_BYTES // 2**20} MiB in at most "
                    f"{MAX_SUBMISSION_FILES} files (leave out virtual environments and data)",
                )


class PolicyUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    tenant: str | None = Field(description="the tenant this user may use; null = every topic")


class BrokerPolicy(BaseModel):
    """The student's broker hardening, as the grader will run it (broker.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_anonymous: bool = True
    plaintext: bool = True
    tls: bool = False
    users: tuple[PolicyUser, ...] = ()


def gateway_command(folder: Path) -> str:
    """The command that starts the student's gateway, from gateway.cmd or run.sh."""
    command_file, script = folder / COMMAND_FILE, folder / SCRIPT_FILE
    if command_file.is_file():
        lines = [
            line.strip()
            for line in command_file.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        if not lines:
            raise NoSubmissionError(
                "gateway.cmd has no command line",
                file=command_file,
                expected="one shell command, e.g. python gateway.py",
            )
        return " && ".join(lines)
    if script.is_file():
        return f"exec sh {SCRIPT_FILE}"
    raise NoSubmissionError(
        "no gateway command in the submission",
        file=folder,
        expected=f"a {COMMAND_FILE} file (one command line) or a {SCRIPT_FILE} script",
    )


def load_broker_policy(path: Path) -> BrokerPolicy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SubmissionError(
            "broker policy file not found",
            file=path,
            expected="broker.yaml in the submission (see the lab README)",
        ) from None
    except yaml.YAMLError as exc:
        raise SubmissionError(f"not valid YAML: {exc}", file=path) from None
    try:
        return BrokerPolicy.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SubmissionError(first["msg"], file=path, key=key) from None
