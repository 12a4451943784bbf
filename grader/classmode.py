"""Class mode: every student of a roster graded in isolation, N at a time.

Each student runs in a subprocess (`python -m iiotlab.cli grade ...`) with its own ports,
tenant, variant and output folder, so one student's gateway cannot disturb another's
grading and both cores are used. gradebook.csv gets a row per roster student, including
those without a submission and those the grader could not grade.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from grader.spec import load_lab
from grader.submission import COMMAND_FILE, SCRIPT_FILE
from iiotlab.errors import ConfigError
from iiotlab.variants import check_name


@dataclass(frozen=True)
class GradebookRow:
    student: str
    score: float | None
    max_score: float
    gradable: bool
    status: str  # graded | no submission | not gradable: <reason>
    points: dict[str, float]


def read_roster(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "student" not in reader.fieldnames:
                raise ConfigError(
                    "the roster needs a 'student' column",
                    file=path,
                    line=1,
                    expected="a CSV header line with 'student'",
                )
            students = [check_name("student", (row["student"] or "").strip()) for row in reader]
    except FileNotFoundError:
        raise ConfigError("roster file not found", file=path) from None
    if len(set(students)) != len(students):
        raise ConfigError("a student appears twice in the roster", file=path)
    return students


def _row_from_result(student: str, result_path: Path, max_score: float) -> GradebookRow:
    if not result_path.is_file():
        return GradebookRow(
            student, None, max_score, False, "not gradable: the grader produced no result", {}
        )
    data = json.loads(result_path.read_text(encoding="utf-8"))
    points = {c["id"]: c["points"] for c in data.get("checks", [])}
    if not data.get("gradable"):
        return GradebookRow(
            student, None, max_score, False, f"not gradable: {data.get('reason')}", points
        )
    return GradebookRow(student, data["score"], data["max_score"], True, "graded", points)


def _has_submission(folder: Path, out: Path) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    return (folder / COMMAND_FILE).is_file() or (folder / SCRIPT_FILE).is_file()


async def _grade_student(
    lab: Path, student: str, folder: Path, out: Path, max_score: float
) -> GradebookRow:
    if not _has_submission(folder, out):
        return GradebookRow(student, None, max_score, True, "no submission", {})
    with (out / "grader.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "iiotlab.cli",
            "grade",
            str(lab),
            "--student",
            student,
            "--submission",
            str(folder),
            "--out",
            str(out),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            await process.wait()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
    return _row_from_result(student, out / "result.json", max_score)


def _absolute(lab_path: Path, submissions: Path) -> tuple[Path, Path]:
    return lab_path.resolve(), submissions.resolve()


def write_gradebook(rows: list[GradebookRow], check_ids: list[str], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "score", "max", *check_ids, "gradable", "status"])
        for row in rows:
            writer.writerow(
                [
                    row.student,
                    "" if row.score is None else f"{row.score:g}",
                    f"{row.max_score:g}",
                    *(f"{row.points[c]:g}" if c in row.points else "" for c in check_ids),
                    "yes" if row.gradable else "no",
                    row.status,
                ]
            )


async def grade_class(
    lab_path: Path,
    roster: Path,
    submissions: Path,
    out: Path,
    *,
    parallel: int = 2,
    show_progress: bool = True,
) -> list[GradebookRow]:
    lab = load_lab(lab_path)
    students = read_roster(roster)
    lab_path, submissions = _absolute(lab_path, submissions)
    gate = asyncio.Semaphore(parallel)
    with Progress(disable=not show_progress, transient=False) as progress:
        task = progress.add_task(f"grading {lab.id}", total=len(students))

        async def one(student: str) -> GradebookRow:
            async with gate:
                row = await _grade_student(
                    lab_path.resolve(),
                    student,
                    (submissions / student).resolve(),
                    out / student,
                    lab.max_score,
                )
            progress.advance(task)
            return row

        rows = await asyncio.gather(*(one(s) for s in students))
    write_gradebook(list(rows), [c.id for c in lab.checks], out / "gradebook.csv")
    return list(rows)
