"""ClusterGrader: class mode's StudentGrader that sends each student to the workers.

It packs the submission (and an instructor's own lab) into a job, sends it, waits for the
outcome and leaves in OUT/<student>/ what a local run leaves there: the worker's logs, and
result.json, report.html and junit.xml signed with this machine's key. The signing key
never leaves the coordinator: a worker's result is checked (lab, student, the variant's
seed) and signed here. What a worker cannot deliver (time limit, refusal, a crash) becomes
a signed not-gradable result that says why. Each student's `job.json` says which worker
graded it and how long the job queued and ran.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from grader.checks.registry import default_registry
from grader.classmode import StudentJob
from grader.cluster.archive import (
    ArchiveError,
    ArchiveTooLargeError,
    pack_folder,
    unpack_folder,
)
from grader.cluster.extra import BrokerUnreachableError
from grader.cluster.jobs import (
    LAB_FOLDERS_NOT_SENT,
    MAX_LAB_ARCHIVE_BYTES,
    MAX_OUT_ARCHIVE_BYTES,
    MAX_SUBMISSION_ARCHIVE_BYTES,
    GradingJob,
    JobOutcome,
    JobState,
    LabPayload,
    decode,
    encode,
    is_builtin,
    lab_payload,
)
from grader.environment import StudentRun
from grader.results import Result, read_result_data
from grader.runner import now_ms, publish
from grader.scoring import not_gradable, submission_error
from grader.signing import SigningKey
from grader.spec import LabPlan, prepare_lab
from grader.submission import SubmissionError, check_size
from iiotlab.errors import ConfigError
from iiotlab.settings import Settings

logger = logging.getLogger(__name__)

JOB_MARGIN_S = 120.0  # a job's time limit: the lab's duration plus this
SIGNED_FILES = ("result.json", "report.html", "junit.xml")


class JobQueue(Protocol):
    """The broker as the coordinator sees it (celery_app.ClusterQueue)."""

    def submit(self, job: GradingJob) -> str: ...

    def state(self, task_id: str) -> JobState: ...

    def forget(self, task_id: str) -> None: ...


def pack_submission(folder: Path, cap: int = MAX_SUBMISSION_ARCHIVE_BYTES) -> bytes:
    """The submission as job bytes; SubmissionError (a graded 0) past the limits."""
    check_size(folder)
    try:
        return pack_folder(folder, cap)
    except ArchiveTooLargeError:
        raise SubmissionError(
            "the submission folder is too large to send to a grading machine",
            file=folder,
            expected=f"at most {cap / 2**20:g} MiB compressed (leave out virtual environments, "
            "build outputs, data sets and logs)",
        ) from None
    except ArchiveError as exc:
        raise SubmissionError(
            f"the submission cannot be sent to a grading machine: {exc}",
            expected="files and folders, and links that stay inside the submission",
        ) from None


def pack_lab(plan: LabPlan, lab: Path) -> LabPayload:
    folder = lab.parent if lab.is_file() else lab
    if is_builtin(folder):
        return lab_payload(lab, plan.lab.id, None)
    try:
        archive = pack_folder(folder, MAX_LAB_ARCHIVE_BYTES, skip=LAB_FOLDERS_NOT_SENT)
    except ArchiveTooLargeError as exc:
        raise ConfigError(str(exc), file=folder, key="--lab") from None
    return lab_payload(lab, plan.lab.id, archive)


class ClusterGrader:
    """Grade each student as a job on the cluster's workers (see the module docstring)."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        settings: Settings,
        key: SigningKey,
        time_limit_s: float | None = None,
        poll_s: float = 0.5,
        submission_cap: int = MAX_SUBMISSION_ARCHIVE_BYTES,
    ) -> None:
        self._queue, self._settings, self._key = queue, settings, key
        self._time_limit_s, self._poll_s, self._cap = time_limit_s, poll_s, submission_cap
        self._labs: dict[Path, tuple[LabPlan, LabPayload]] = {}

    def _lab(self, lab: Path) -> tuple[LabPlan, LabPayload]:
        if lab not in self._labs:
            plan = prepare_lab(lab, default_registry())
            self._labs[lab] = (plan, pack_lab(plan, lab))
        return self._labs[lab]

    async def grade(self, job: StudentJob) -> None:
        started = now_ms()
        plan, payload = self._lab(job.lab)
        run = StudentRun(plan, job.student, self._settings.course_secret, job.out.resolve())
        limit = self._time_limit_s or plan.lab.duration_s + JOB_MARGIN_S
        try:
            submission = await asyncio.to_thread(pack_submission, job.submission, self._cap)
        except SubmissionError as exc:
            result = submission_error(run.lab, run.student, run.seed, started, now_ms(), exc)
            await asyncio.to_thread(publish, run, result, self._key)
            return
        sent = GradingJob(
            lab=payload,
            student=job.student,
            submission=encode(submission),
            time_limit_s=limit,
            submitted=time.time(),
        )
        task_id = await self._submit(sent)
        state = await self._wait(task_id)
        await asyncio.to_thread(self._collect, run, task_id, sent, state, started)
        await asyncio.to_thread(self._queue.forget, task_id)

    async def _submit(self, job: GradingJob) -> str:
        """Send the job, waiting through a broker outage (a restart keeps the queue)."""
        warned = False
        while True:
            try:
                return await asyncio.to_thread(self._queue.submit, job)
            except BrokerUnreachableError as exc:
                if not warned:
                    logger.warning("%s: trying again", exc)
                warned = True
            await asyncio.sleep(self._poll_s * 4)

    async def _wait(self, task_id: str) -> JobState:
        warned = False
        while True:
            state = await asyncio.to_thread(self._queue.state, task_id)
            if state.phase in ("done", "failed"):
                return state
            if state.phase == "unreachable" and not warned:
                logger.warning("the broker does not answer (%s): waiting for it", state.error)
            warned = state.phase == "unreachable"
            await asyncio.sleep(self._poll_s)

    def _collect(
        self, run: StudentRun, task_id: str, job: GradingJob, state: JobState, started: int
    ) -> None:
        outcome = state.outcome
        record = {
            "task_id": task_id,
            "began_at": started / 1000,  # before packing the submission
            "queued_at": job.submitted,
            "collected_at": time.time(),
        }
        if outcome is None:
            self._not_gradable(run, started, f"the grading job failed on a worker: {state.error}")
        else:
            record |= {
                "worker": outcome.worker,
                "status": outcome.status,
                "started_at": outcome.started,
                "grading_s": round(outcome.grading_s, 3),
            }
            self._deliver(run, outcome, started)
        (run.out_dir / "job.json").write_text(json.dumps(record, indent=2) + "\n")

    def _deliver(self, run: StudentRun, outcome: JobOutcome, started: int) -> None:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        if outcome.status == "refused":
            reason = f"worker {outcome.worker} refused the grading job: {outcome.message}"
            self._not_gradable(run, started, reason)
            return
        with tempfile.TemporaryDirectory(prefix="iiotlab-collect-") as folder:
            incoming = Path(folder) / "out"
            try:
                unpack_folder(
                    decode(outcome.archive or ""),
                    incoming,
                    max_bytes=MAX_OUT_ARCHIVE_BYTES * 8,
                    max_files=100_000,
                )
            except (ArchiveError, ValueError) as exc:
                reason = f"worker {outcome.worker} sent an out folder that cannot be read: {exc}"
                self._not_gradable(run, started, reason)
                return
            for name in SIGNED_FILES:  # only what this machine signs counts
                (run.out_dir / name).unlink(missing_ok=True)
            result_file = incoming / "result.json"
            result = self._checked(run, outcome, result_file) if result_file.is_file() else None
            for name in SIGNED_FILES:
                (incoming / name).unlink(missing_ok=True)
            shutil.copytree(incoming, run.out_dir, dirs_exist_ok=True)
        if outcome.status == "timed_out":
            self._not_gradable(run, started, outcome.message or "the grading job timed out")
        elif isinstance(result, str):
            self._not_gradable(run, started, result)
        elif result is not None:
            publish(run, result, self._key)
        # graded without a result: `iiotlab grade` crashed (its grader.log says how); the
        # row says "the grader produced no result", as for a local run

    def _checked(self, run: StudentRun, outcome: JobOutcome, path: Path) -> Result | str:
        """The worker's result, or why it cannot be signed here."""
        try:
            result = Result.model_validate(read_result_data(path))
        except (ConfigError, ValidationError) as exc:
            return f"worker {outcome.worker} sent a result that is not valid: {exc}"
        if (result.lab, result.student) != (run.lab.id, run.student):
            return f"worker {outcome.worker} sent the result of {result.student} on {result.lab}"
        if result.seed != f"{run.seed:016x}":
            return (
                f"worker {outcome.worker} graded another variant of the lab: its "
                "IIOTLAB_COURSE_SECRET differs from this machine's; give every worker the "
                "course secret (docs/cluster.md)"
            )
        return result

    def _not_gradable(self, run: StudentRun, started: int, reason: str) -> None:
        result = not_gradable(run.lab, run.student, run.seed, started, now_ms(), reason)
        publish(run, result, self._key)
