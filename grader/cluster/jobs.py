"""A grading job and its outcome: what travels between the coordinator and a worker.

Both are JSON (never pickle: a worker must not run what a message says). Folders travel
as base64 .tar.gz: the submission and, for an instructor's own lab, the lab folder; a
built-in lab travels as its id and the digest of its lab.yaml, so a worker with another
version of the lab refuses it instead of grading against the wrong spec.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from grader.catalog import SPEC_FILE, builtin_labs_dir
from iiotlab.errors import VariantError
from iiotlab.variants import check_name

MAX_SUBMISSION_ARCHIVE_BYTES = 16 * 2**20  # compressed; larger folders are refused
MAX_LAB_ARCHIVE_BYTES = 4 * 2**20
MAX_OUT_ARCHIVE_BYTES = 64 * 2**20
# what an instructor's lab folder keeps to itself: the worker needs the spec alone
LAB_FOLDERS_NOT_SENT = ("solution", "mutants", "starter")


def _plain_name(kind: str) -> AfterValidator:
    """An id that is safe as a file name on the worker (no '/', no '..')."""

    def check(value: str) -> str:
        try:
            return check_name(kind, value)
        except VariantError as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(check)


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def spec_digest(spec: Path) -> str:
    return hashlib.sha256(spec.read_bytes()).hexdigest()


class LabPayload(BaseModel):
    """The lab of a job: a built-in lab's id, or an instructor's lab folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, _plain_name("lab")]
    spec_name: Annotated[str, _plain_name("spec file")] = SPEC_FILE  # inside the lab folder
    digest: str  # sha256 of the spec file
    archive: str | None = None  # base64 .tar.gz of the lab folder; None: a built-in lab


class GradingJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    lab: LabPayload
    student: Annotated[str, _plain_name("student")]
    submission: str  # base64 .tar.gz of the submission folder
    time_limit_s: float = Field(gt=0)
    submitted: float  # epoch seconds, on the coordinator's clock


class JobOutcome(BaseModel):
    """What a worker sends back. `archive` holds the student's out folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["graded", "timed_out", "refused"]
    worker: str
    message: str | None = None  # why timed out or refused
    exit_code: int | None = None  # of `iiotlab grade`
    archive: str | None = None
    started: float  # epoch seconds, on the worker's clock
    grading_s: float = 0.0  # how long `iiotlab grade` ran


@dataclass(frozen=True)
class JobState:
    """Where a job is: queued, started, done (`outcome`), failed (`error`), or the broker
    did not answer (`error`)."""

    phase: Literal["waiting", "started", "done", "failed", "unreachable"]
    outcome: JobOutcome | None = None
    error: str | None = None


def is_builtin(folder: Path) -> bool:
    builtin = builtin_labs_dir()
    return builtin is not None and folder.resolve().parent == builtin.resolve()


def lab_payload(lab: Path, lab_id: str, archive: bytes | None) -> LabPayload:
    """The payload of a resolved lab; `archive` is the packed folder of a lab not built in."""
    spec = lab if lab.is_file() else lab / SPEC_FILE
    return LabPayload(
        id=lab_id,
        spec_name=spec.name,
        digest=spec_digest(spec),
        archive=None if archive is None else encode(archive),
    )


def builtin_spec(payload: LabPayload) -> Path | None:
    """This machine's spec file of a built-in lab, or None when it has no such lab."""
    builtin = builtin_labs_dir()
    if builtin is None:
        return None
    spec = builtin / payload.id / SPEC_FILE
    return spec if spec.is_file() else None
