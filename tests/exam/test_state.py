"""Exam time (extra time, pause), the attempt that counts, and what feedback shows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from grader.exam.spec import load_exam
from grader.exam.state import Attempt, Candidate, ExamClock, feedback_view, read_roster, task_points
from grader.results import CheckResult, Result
from iiotlab.errors import ConfigError
from tests.exam.helpers import EXAM, LAB


def result(score: float, max_score: float = 100) -> Result:
    check = CheckResult(
        id="values", kind="values_match_truth", points=score, max_points=max_score,
        passed=score == max_score, message="m", hint={"en": "h", "zh": "提示"},
    )  # fmt: skip
    return Result(
        lab="net-01-modbus-datasheet", student="s1", seed="0", started="", finished="",
        gradable=True, score=score, max_score=max_score, checks=[check],
    )  # fmt: skip


def graded(number: int, score: float) -> Attempt:
    return Attempt(
        f"a{number}", "s1", "net-01-modbus-datasheet", number, 0.0, "graded", result(score)
    )


def test_extra_time_stretches_the_limit() -> None:
    clock = ExamClock(600)
    plain, extra = Candidate("s1", "C1"), Candidate("s2", "C2", extra_percent=25)
    assert clock.time_left(extra) - clock.time_left(plain) == pytest.approx(150, abs=0.5)


def test_pause_stops_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]  # the exam clock's monotonic time, moved by hand
    monkeypatch.setattr(
        "grader.exam.state.time", SimpleNamespace(monotonic=lambda: now[0], time=lambda: 0.0)
    )
    clock = ExamClock(600)
    candidate = Candidate("s1", "C1")
    now[0] += 10
    clock.pause()
    assert clock.time_left(candidate) == 590
    now[0] += 300
    assert clock.time_left(candidate) == 590
    clock.resume()
    now[0] += 20
    assert clock.time_left(candidate) == 570
    clock.ended = True
    assert clock.time_left(candidate) == 0


@pytest.mark.parametrize(("counts", "expected"), [("best", 24.0), ("last", 9.0)])
def test_the_attempt_that_counts(tmp_path: Path, counts: str, expected: float) -> None:
    text = EXAM.format(feedback="score", minutes=10, lab=LAB).replace(
        "counts: best", f"counts: {counts}"
    )
    text = text.replace("points: 100", "points: 30")
    (tmp_path / "exam.yaml").write_text(text, encoding="utf-8")
    exam = load_exam(tmp_path / "exam.yaml")
    not_gradable = Attempt("a3", "s1", exam.tasks[0].id, 3, 0.0, "not_gradable", None)
    attempts = [graded(1, 80), graded(2, 30), not_gradable]
    assert task_points(exam, exam.tasks[0], attempts) == expected
    assert task_points(exam, exam.tasks[0], [not_gradable]) is None
    assert not not_gradable.counts_against_limit


def test_feedback_settings() -> None:
    full = feedback_view(result(50), "full", ended=False)
    assert full is not None and full["checks"][0]["hint"]["zh"] == "提示"
    score = feedback_view(result(50), "score", ended=False)
    assert score is not None and score["score"] == 50 and "checks" not in score
    assert feedback_view(result(50), "none", ended=False) is None
    after = feedback_view(result(50), "none", ended=True)
    assert after is not None and "checks" in after


def test_roster_errors(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student\ns1\ns1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="twice"):
        read_roster(roster)
    roster.write_text("name\ns1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'student' column"):
        read_roster(roster)
