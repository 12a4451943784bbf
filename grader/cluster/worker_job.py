"""Run one grading job on a worker: the same `iiotlab grade` command as class mode.

The job's lab and submission are unpacked into a private temporary folder, graded by
`python -m iiotlab.cli grade LAB --student S --submission DIR --out DIR --hide ...`
exactly as `LocalGrader` runs it (so the sandbox hides this job's folders from the
submission), and the out folder goes back packed in the outcome. The worker signs with a
throwaway key: the coordinator checks the result and signs it with the course's key.
No Celery here: celery_app.py calls `run_job`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from grader.classmode import StudentJob, grade_command
from grader.cluster.archive import ArchiveError, pack_folder, unpack_folder
from grader.cluster.extra import VISIBILITY_MARGIN_S
from grader.cluster.jobs import (
    MAX_LAB_ARCHIVE_BYTES,
    MAX_OUT_ARCHIVE_BYTES,
    GradingJob,
    JobOutcome,
    LabPayload,
    builtin_spec,
    decode,
    encode,
    spec_digest,
)
from grader.signing import write_new_key
from grader.submission import MAX_SUBMISSION_BYTES, MAX_SUBMISSION_FILES
from iiotlab.errors import IiotlabError

# After the time limit: SIGINT lets `iiotlab grade` stop the gateway and sweep its
# processes (the sandbox waits up to 10 s for them), then SIGKILL.
INTERRUPT_GRACE_S = 12.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
JOB_FOLDER_PREFIX = "iiotlab-job-"


class JobRefusedError(IiotlabError):
    """This worker cannot run the job as sent; the message says why."""


def _lab_on_worker(payload: LabPayload, folder: Path) -> Path:
    """The spec file to grade: this machine's built-in lab, or the lab the job carried."""
    if payload.archive is None:
        spec = builtin_spec(payload)
        if spec is None:
            raise JobRefusedError(f"this worker has no built-in lab {payload.id!r}")
        if spec_digest(spec) != payload.digest:
            raise JobRefusedError(
                f"this worker's built-in lab {payload.id!r} differs from the coordinator's "
                "(another iiotlab version): install the same iiotlab version on both"
            )
        return spec
    lab = folder / payload.id
    unpack_folder(decode(payload.archive), lab, max_bytes=MAX_LAB_ARCHIVE_BYTES * 8, max_files=500)
    spec = lab / payload.spec_name
    if not spec.is_file() or spec_digest(spec) != payload.digest:
        raise JobRefusedError(f"the job's lab {payload.id!r} arrived without its spec file")
    return spec


def _interrupt_with_parent() -> Callable[[], None]:
    """preexec_fn: default SIGINT/SIGTERM (a pool process may ignore them), and SIGINT when
    the forking thread dies, even by SIGKILL, so `iiotlab grade` stops its gateway."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGINT)

    return preexec


def _grade(command: list[str], env: dict[str, str], log: Path, limit_s: float) -> int | None:
    """Run `iiotlab grade`; its exit code, or None when it passed `limit_s`."""
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            env=env,
            start_new_session=True,  # a Ctrl-C of the worker's terminal is not the job's
            preexec_fn=_interrupt_with_parent() if sys.platform.startswith("linux") else None,
        )
        try:
            return process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def _pack_out(out: Path) -> str:
    try:
        return encode(pack_folder(out, MAX_OUT_ARCHIVE_BYTES))
    except ArchiveError:  # the logs are what grows: the result itself is small
        logs = {"gateway.log", "messages.jsonl"}
        return encode(pack_folder(out, MAX_OUT_ARCHIVE_BYTES, skip=logs))


def _sweep_stale_job_folders() -> None:
    """Delete the job folders of pool processes that died (a SIGKILLed worker leaves its
    students' submissions behind); a folder's name carries its process id."""
    for folder in Path(tempfile.gettempdir()).glob(f"{JOB_FOLDER_PREFIX}*"):
        pid = folder.name[len(JOB_FOLDER_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _too_long(job: GradingJob, visibility_timeout_s: float) -> str | None:
    needed = job.time_limit_s + VISIBILITY_MARGIN_S
    if needed <= visibility_timeout_s:
        return None
    return (
        f"the job may run {job.time_limit_s:g} s, but this worker's --visibility-timeout is "
        f"{visibility_timeout_s:g} s: the broker would hand the job to a second worker while "
        f"the first still grades it; start workers with --visibility-timeout of at least "
        f"{needed:g}"
    )


def run_job(job: GradingJob, *, worker: str, visibility_timeout_s: float) -> JobOutcome:
    """Grade the job in a private temporary folder; the outcome carries its out folder."""
    started = time.time()
    refusal = _too_long(job, visibility_timeout_s)
    if refusal is not None:
        return JobOutcome(status="refused", worker=worker, started=started, message=refusal)
    _sweep_stale_job_folders()
    with tempfile.TemporaryDirectory(prefix=f"{JOB_FOLDER_PREFIX}{os.getpid()}-") as folder:
        root = Path(folder)
        submission, out = root / "submissions" / job.student, root / "out" / job.student
        try:
            lab = _lab_on_worker(job.lab, root / "lab")
            unpack_folder(
                decode(job.submission),
                submission,
                max_bytes=MAX_SUBMISSION_BYTES,
                max_files=MAX_SUBMISSION_FILES,
            )
        except IiotlabError as exc:
            return JobOutcome(status="refused", worker=worker, started=started, message=str(exc))
        out.mkdir(parents=True)
        key = root / "key" / "throwaway-signing-key.pem"
        write_new_key(key)  # the coordinator signs; this key proves nothing
        env = {**os.environ, "IIOTLAB_SIGNING_KEY": str(key)}
        begun = time.monotonic()
        # what class mode runs; the sandbox hides this job's folders from the submission
        hide = (out.parent, submission.parent)
        command = grade_command(StudentJob(lab, job.student, submission, out, hide))
        code = _grade(command, env, out / "grader.log", job.time_limit_s)
        late = f"the grading job passed its time limit of {job.time_limit_s:g} s on worker {worker}"
        return JobOutcome(
            status="graded" if code is not None else "timed_out",
            worker=worker,
            message=None if code is not None else f"{late} and was stopped",
            exit_code=code,
            archive=_pack_out(out),
            started=started,
            grading_s=time.monotonic() - begun,
        )
