"""The running exam: live environments, candidates, attempts and the audit log.

Owned by the app's lifespan (server.py); no module state.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.checks.registry import default_registry
from grader.environment import StudentRun
from grader.exam.attempts import grade_attempt
from grader.exam.audit import AuditLog
from grader.exam.live import LiveLab
from grader.exam.spec import Exam, ExamTask
from grader.exam.state import (
    Attempt,
    Candidate,
    ExamClock,
    candidate_points,
    new_code,
    total,
)
from grader.signing import SigningKey
from grader.spec import LabPlan, prepare_lab
from iiotlab.errors import IiotlabError

logger = logging.getLogger(__name__)
LOGIN_FAILURES = 5  # wrong codes per client within LOGIN_WINDOW_S before 429
LOGIN_WINDOW_S = 60.0


@dataclass(frozen=True)
class ExamConfig:
    exam: Exam
    students: tuple[str, ...]
    out_dir: Path
    key: SigningKey
    course_secret: str
    host: str = "127.0.0.1"
    wait_gateway_s: float = 60.0
    parallel: int = 2  # gradings at a time
    start_parallel: int = 4  # environments started at a time

    @property
    def advertised(self) -> str:
        if self.host in ("0.0.0.0", ""):
            return socket.gethostbyname(socket.gethostname())
        return self.host


class AttemptRefusedError(IiotlabError):
    """The candidate may not start this attempt now; the message says why (en)."""


class ExamService:
    def __init__(self, config: ExamConfig) -> None:
        self.config = config
        self.exam = config.exam
        self.out_dir = config.out_dir
        self.audit = AuditLog(config.out_dir / "audit.jsonl")
        self.candidates = {s: Candidate(s, new_code()) for s in config.students}
        self.tokens: dict[str, str] = {}  # token -> student
        self.proctor_token = secrets.token_urlsafe(32)
        self.live: dict[tuple[str, str], LiveLab] = {}
        self.attempts: dict[str, Attempt] = {}
        self.clock = ExamClock(self.exam.spec.time_limit_min * 60)
        self.changed = asyncio.Event()
        self.version = 0
        self._login_failures: dict[str, deque[float]] = {}
        self._grading = asyncio.Semaphore(config.parallel)
        self._tasks: set[asyncio.Task[None]] = set()
        self._plans: dict[str, LabPlan] = {}
        self.closing: dict[str, Any] | None = None
        self._closed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def codes_file(self) -> Path:
        return self.out_dir / "codes.csv"

    async def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.audit.open()
        self._write_codes()
        registry = default_registry()
        self._plans = {t.id: prepare_lab(t.lab_path, registry) for t in self.exam.tasks}
        started = time.monotonic()
        await self._start_environments()
        self.clock = ExamClock(self.exam.spec.time_limit_min * 60)
        self.audit.append(
            "exam_started",
            "server",
            exam=self.exam.spec.id,
            candidates=sorted(self.candidates),
            tasks=[t.id for t in self.exam.tasks],
            environments=len(self.live),
            environments_start_s=round(time.monotonic() - started, 2),
        )
        self._spawn(self._watch_time(), "exam clock")

    def _write_codes(self) -> None:
        with self.codes_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student", "code"])
            for candidate in self.candidates.values():
                writer.writerow([candidate.student, candidate.code])
        self.codes_file.chmod(0o600)

    async def _start_environments(self) -> None:
        gate = asyncio.Semaphore(self.config.start_parallel)

        async def start_one(student: str, task: ExamTask) -> None:
            run = StudentRun(
                self._plans[task.id],
                student,
                self.config.course_secret,
                (self.out_dir / "live" / student / task.id).resolve(),
            )
            live = LiveLab(
                task, self._plans[task.id], run, self.config.host, self.config.advertised
            )
            async with gate:
                await live.start()
            self.live[(student, task.id)] = live

        async with asyncio.TaskGroup() as group:
            for student in self.candidates:
                for task in self.exam.tasks:
                    group.create_task(start_one(student, task))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        lives, self.live = list(self.live.values()), {}
        await asyncio.gather(*(live.stop() for live in lives), return_exceptions=True)
        if self.audit.count and not self.audit.closed:
            # stopped before the end (Ctrl-C): the log stays open; verify-log --open checks it
            self.audit.append("server_stopped", "server", ended=self.clock.ended)
        self.audit.stop()

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def touch(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def _watch_time(self) -> None:
        """End the exam once every candidate's time is up and no grading runs."""
        while not self.clock.ended:
            await asyncio.sleep(1.0)
            out_of_time = all(self.clock.time_left(c) <= 0 for c in self.candidates.values())
            running = any(a.state == "running" for a in self.attempts.values())
            if out_of_time and not running and not self.clock.paused:
                await self.end("server")
            self.touch()

    # -- candidates -------------------------------------------------------------------

    def login_blocked(self, client: str) -> float:
        """Seconds until `client` may try a code again (0: now)."""
        failures = self._login_failures.get(client)
        if not failures:
            return 0.0
        now = time.monotonic()
        while failures and now - failures[0] > LOGIN_WINDOW_S:
            failures.popleft()
        if len(failures) < LOGIN_FAILURES:
            return 0.0
        return LOGIN_WINDOW_S - (now - failures[0])

    def login(self, code: str, client: str) -> Candidate | None:
        """The candidate of a valid unused code, now holding a token; None when wrong."""
        match = next(
            (
                c
                for c in self.candidates.values()
                if secrets.compare_digest(c.code.encode(), code.strip().upper().encode())
            ),
            None,
        )
        if match is None or match.token is not None or self.clock.ended:
            self._login_failures.setdefault(client, deque()).append(time.monotonic())
            self.audit.append("login_refused", client, used=match is not None)
            return None
        match.token = secrets.token_urlsafe(32)
        self.tokens[match.token] = match.student
        self.audit.append("login", match.student, client=client)
        self.touch()
        return match

    def candidate_of(self, token: str) -> Candidate | None:
        if self.clock.ended:
            return None
        student = self.tokens.get(token)
        return self.candidates.get(student) if student else None

    def new_attempt(self, candidate: Candidate, task: ExamTask) -> Attempt:
        if self.clock.ended:
            raise AttemptRefusedError("the exam has ended")
        if self.clock.paused:
            raise AttemptRefusedError("the exam is paused")
        if self.clock.time_left(candidate) <= 0:
            raise AttemptRefusedError("your time is up")
        mine = candidate.of_task(task.id)
        if any(a.state == "running" for a in mine):
            raise AttemptRefusedError("an attempt of this task is being graded")
        used = sum(a.counts_against_limit for a in mine)
        if used >= task.spec.attempts:
            raise AttemptRefusedError(f"all {task.spec.attempts} attempts of this task are used")
        attempt = Attempt(
            secrets.token_urlsafe(12), candidate.student, task.id, len(mine) + 1, time.time()
        )
        candidate.attempts.append(attempt)
        self.attempts[attempt.id] = attempt
        self.audit.append(
            "attempt", candidate.student, task=task.id, attempt=attempt.id, number=attempt.number
        )
        # queued until a grading slot is free; then waiting_gateway: (re)start it now
        self.live[(candidate.student, task.id)].phase = "queued"
        self._spawn(self._grade(attempt), f"attempt {attempt.id}")
        self.touch()
        return attempt

    async def _grade(self, attempt: Attempt) -> None:
        live = self.live[(attempt.student, attempt.task)]
        out = (
            self.out_dir / "results" / attempt.student / attempt.task / f"attempt-{attempt.number}"
        )
        async with self._grading:
            result = await grade_attempt(live, out, self.config.key, self.config.wait_gateway_s)
        attempt.result = result
        attempt.state = "graded" if result.gradable else "not_gradable"
        self.audit.append(
            "result",
            "server",
            student=attempt.student,
            task=attempt.task,
            attempt=attempt.id,
            gradable=result.gradable,
            reason=result.reason,
            score=result.score,
            max_score=result.max_score,
            signature=result.signature,
        )
        self.touch()

    # -- proctor ----------------------------------------------------------------------

    def set_extra_time(self, student: str, percent: float) -> None:
        self.candidates[student].extra_percent = percent
        self.audit.append("extra_time", "proctor", student=student, percent=percent)
        self.touch()

    def reissue_code(self, student: str) -> str:
        """A new one-time code for a candidate who lost the session; the old token stops."""
        candidate = self.candidates[student]
        if candidate.token is not None:
            self.tokens.pop(candidate.token, None)
        candidate.token, candidate.code = None, new_code()
        self.audit.append("code_reissued", "proctor", student=student)
        self.touch()
        return candidate.code

    def pause(self) -> None:
        self.clock.pause()
        self.audit.append("pause", "proctor")
        self.touch()

    def resume(self) -> None:
        self.clock.resume()
        self.audit.append("resume", "proctor")
        self.touch()

    async def end(self, actor: str) -> dict[str, Any]:
        """End the exam: tokens stop working, running gradings finish, results are written."""
        if self.closing is not None or self.clock.ended:
            await self._closed.wait()
            assert self.closing is not None
            return self.closing
        self.clock.resume()
        self.clock.ended = True
        self.tokens.clear()
        self.audit.append("exam_ended", actor)
        self.touch()
        while any(a.state == "running" for a in self.attempts.values()):
            await self.changed.wait()  # set when a grading ends
        from grader.exam.closing import close_exam

        self.closing = close_exam(self)
        self.audit.close(self.config.key, self.exam.spec.id)
        self._closed.set()
        self.touch()
        lives, self.live = list(self.live.values()), {}
        await asyncio.gather(*(live.stop() for live in lives), return_exceptions=True)
        return self.closing

    def snapshot(self) -> dict[str, Any]:
        """The proctor's view of every candidate."""
        rows = []
        for c in self.candidates.values():
            points = candidate_points(self.exam, c)
            rows.append(
                {
                    "student": c.student,
                    "state": "ended"
                    if self.clock.ended
                    else ("in exam" if c.token else "not logged in"),
                    "logged_in": c.token is not None,
                    "time_left_s": round(self.clock.time_left(c), 1),
                    "extra_percent": c.extra_percent,
                    "attempts": [
                        {
                            "id": a.id,
                            "task": a.task,
                            "number": a.number,
                            "state": a.state,
                            "score": a.result.score if a.result else None,
                        }
                        for a in c.attempts
                    ],
                    "points": points,
                    "score": total(points),
                }
            )
        return {
            "exam": self.exam.spec.id,
            "paused": self.clock.paused,
            "ended": self.clock.ended,
            "max_points": self.exam.spec.max_points,
            "candidates": rows,
            "audit_entries": self.audit.count,
            "closing": self.closing,
        }
