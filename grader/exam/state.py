"""The exam's state: candidates, their codes and tokens, time (extra time, pause), attempts
and the score that counts. Plain data in memory; every change is in the audit log.
"""

from __future__ import annotations

import csv
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.exam.spec import Exam, ExamTask
from grader.results import Result
from iiotlab.errors import ConfigError
from iiotlab.variants import check_name

AttemptState = Literal["running", "graded", "not_gradable"]


@dataclass
class Attempt:
    id: str
    student: str
    task: str
    number: int
    created: float
    state: AttemptState = "running"
    result: Result | None = None

    @property
    def counts_against_limit(self) -> bool:
        """A run the grader could not grade is not the candidate's attempt."""
        return self.state != "not_gradable"


@dataclass
class Candidate:
    student: str
    code: str
    token: str | None = None
    extra_percent: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    def of_task(self, task: str) -> list[Attempt]:
        return [a for a in self.attempts if a.task == task]


def read_roster(path: Path) -> list[str]:
    """The `student` column of a roster CSV, each a valid id, each once."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "student" not in reader.fieldnames:
                raise ConfigError("roster has no 'student' column", file=path, line=1)
            students = [check_name("student", (row["student"] or "").strip()) for row in reader]
    except FileNotFoundError:
        raise ConfigError(
            "roster not found", file=path, expected="a CSV with a 'student' column"
        ) from None
    duplicates = sorted({s for s in students if students.count(s) > 1})
    if duplicates:
        raise ConfigError("a student appears twice in the roster", file=path, value=duplicates[0])
    if not students:
        raise ConfigError("the roster is empty", file=path)
    return students


def new_code() -> str:
    """A one-time code a candidate types: 10 characters without look-alikes."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


class ExamClock:
    """Exam time: the limit, stretched by a candidate's extra time, stopped while paused."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.paused_s = 0.0
        self.paused_at: float | None = None
        self.ended = False

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def pause(self) -> None:
        if self.paused_at is None:
            self.paused_at = time.monotonic()

    def resume(self) -> None:
        if self.paused_at is not None:
            self.paused_s += time.monotonic() - self.paused_at
            self.paused_at = None

    def elapsed(self) -> float:
        now = self.paused_at if self.paused_at is not None else time.monotonic()
        return now - self.started - self.paused_s

    def limit_for(self, candidate: Candidate) -> float:
        return self.limit_s * (1 + candidate.extra_percent / 100)

    def time_left(self, candidate: Candidate) -> float:
        if self.ended:
            return 0.0
        return max(0.0, self.limit_for(candidate) - self.elapsed())

    def deadline_wall(self, candidate: Candidate) -> float:
        """When the candidate's time runs out, on the wall clock, if nobody pauses."""
        return time.time() + self.time_left(candidate)


def task_points(exam: Exam, task: ExamTask, attempts: list[Attempt]) -> float | None:
    """The task's exam points from the attempt that counts (best or last graded)."""
    graded = [a.result for a in attempts if a.state == "graded" and a.result is not None]
    if not graded:
        return None
    fractions = [r.score / r.max_score if r.max_score else 0.0 for r in graded]
    fraction = max(fractions) if exam.spec.counts == "best" else fractions[-1]
    return round(task.spec.points * fraction, 2)


def candidate_points(exam: Exam, candidate: Candidate) -> dict[str, float | None]:
    return {t.id: task_points(exam, t, candidate.of_task(t.id)) for t in exam.tasks}


def total(points: dict[str, float | None]) -> float:
    return round(sum(p or 0.0 for p in points.values()), 2)


def feedback_view(result: Result, feedback: str, ended: bool) -> dict[str, Any] | None:
    """What the candidate may see of a result under the exam's feedback setting."""
    if feedback == "none" and not ended:
        return None
    view: dict[str, Any] = {
        "gradable": result.gradable,
        "reason": result.reason,
        "score": result.score,
        "max_score": result.max_score,
    }
    if feedback == "full" or ended:
        view["checks"] = [
            {
                "id": c.id,
                "passed": c.passed,
                "points": c.points,
                "max_points": c.max_points,
                "message": c.message,
                "hint": c.hint,
            }
            for c in result.checks
        ]
    return view
