"""Class mode: every student of a roster graded in isolation, N at a time.

Each student runs in a subprocess (`python -m iiotlab.cli grade ...`) with its own ports,
tenant, variant and output folder, so one student's gateway cannot disturb another's
grading and both cores are used. gradebook.csv gets a row per roster student, including
those without a submission and those the grader could not grade.

Grading one student is the seam: a `StudentGrader` (here `LocalGrader`; a cluster job in
grader/cluster/) leaves result.json, report.html, junit.xml and logs in the student's out
folder, and the gradebook row is derived from that result whoever graded it.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.progress import Progress

from grader.results import read_result_data
from grader.signing import verify
from grader.spec import load_lab
from grader.submission import COMMAND_FILE, SCRIPT_FILE
from iiotlab.errors import ConfigError, SignatureError
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


def row_from_result(student: str, data: dict[str, Any] | None, max_score: float) -> GradebookRow:
    """A gradebook row derived from a result (None: the grader produced none)."""
    if data is None:
        return GradebookRow(
            student, None, max_score, False, "not gradable: the grader produced no result", {}
        )
    points = {c["id"]: c["points"] for c in data.get("checks", [])}
    if not data.get("gradable"):
        return GradebookRow(
            student, None, max_score, False, f"not gradable: {data.get('reason')}", points
        )
    status = "graded"
    if data.get("submission_error"):
        status = f"graded: {data['submission_error'].get('en')}"
    else:
        sandbox = data.get("sandbox") or {}
        notes = [e.get("en", "") for e in sandbox.get("events") or []]
        crashes = [e for e in sandbox.get("exits") or [] if not e.get("killed_by_grader")]
        if crashes and not sandbox.get("events"):
            notes.append(
                f"Your gateway exited by itself {len(crashes)} time(s), first with code "
                f"{crashes[0].get('code')} (see gateway.log)."
            )
        if notes:
            status = "graded: " + " ".join(notes)
    return GradebookRow(student, data["score"], data["max_score"], True, status, points)


def _read_result(path: Path) -> dict[str, Any] | None:
    return read_result_data(path) if path.is_file() else None


def _has_submission(folder: Path, out: Path) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    return (folder / COMMAND_FILE).is_file() or (folder / SCRIPT_FILE).is_file()


@dataclass(frozen=True)
class StudentJob:
    """One student to grade: the lab, the submission folder and the student's out folder."""

    lab: Path  # resolved lab folder or lab.yaml
    student: str
    submission: Path
    out: Path  # OUT/<student>/
    hide: tuple[Path, ...]  # what the submission must not see: the class's folders


class StudentGrader(Protocol):
    """Grades one student into `job.out` (result.json, report.html, junit.xml, logs)."""

    async def grade(self, job: StudentJob) -> None: ...


def grade_command(job: StudentJob) -> list[str]:
    """What grades one student, here and on a cluster worker: `iiotlab grade` with --hide."""
    hidden = [arg for path in job.hide for arg in ("--hide", str(path))]
    return [
        sys.executable,
        "-m",
        "iiotlab.cli",
        "grade",
        str(job.lab),
        "--student",
        job.student,
        "--submission",
        str(job.submission),
        "--out",
        str(job.out),
        *hidden,
    ]


class LocalGrader:
    """`iiotlab grade` in a subprocess on this machine, `parallel` students at a time."""

    def __init__(self, parallel: int = 2) -> None:
        self._gate = asyncio.Semaphore(parallel)

    async def grade(self, job: StudentJob) -> None:
        async with self._gate:
            await self._run(job)

    async def _run(self, job: StudentJob) -> None:
        with (job.out / "grader.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *grade_command(job),
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


async def _grade_student(
    grader: StudentGrader, lab: Path, student: str, folder: Path, out: Path, max_score: float
) -> GradebookRow:
    if not _has_submission(folder, out):
        return GradebookRow(student, None, max_score, True, "no submission", {})
    # no student sees the class's out folder or another student's submission
    await grader.grade(StudentJob(lab, student, folder, out, (out.parent, folder.parent)))
    return row_from_result(student, _read_result(out / "result.json"), max_score)


def _absolute(lab_path: Path, submissions: Path) -> tuple[Path, Path]:
    return lab_path.resolve(), submissions.resolve()


HEAD, TAIL = ["student", "score", "max"], ["gradable", "status"]


def _csv_row(row: GradebookRow, check_ids: list[str]) -> list[str]:
    return [
        row.student,
        "" if row.score is None else f"{row.score:g}",
        f"{row.max_score:g}",
        *(f"{row.points[c]:g}" if c in row.points else "" for c in check_ids),
        "yes" if row.gradable else "no",
        row.status,
    ]


def write_gradebook(rows: list[GradebookRow], check_ids: list[str], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEAD, *check_ids, *TAIL])
        writer.writerows(_csv_row(row, check_ids) for row in rows)


def verify_gradebook(out: Path, public_key: Ed25519PublicKey) -> list[str]:
    """Recompute OUT/gradebook.csv from the signed results beside it; what differs.

    A row must equal the row derived from OUT/<student>/result.json, whose signature must
    hold; a student without a result may only have a row without a score.
    """
    path = out / "gradebook.csv"
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            table = list(csv.reader(handle))
    except FileNotFoundError:
        raise ConfigError("gradebook not found", file=path) from None
    if not table or table[0][:3] != HEAD or table[0][-2:] != TAIL:
        raise ConfigError("not a gradebook", file=path, line=1, expected=",".join(HEAD) + ",...")
    check_ids, problems = table[0][3:-2], []
    for line, cells in enumerate(table[1:], start=2):
        student = cells[0] if cells else ""
        result_path = out / check_name("student", student) / "result.json"
        data = _read_result(result_path)
        if data is None:
            if len(cells) < 2 or cells[1] != "":
                problems.append(f"{path}:{line}: {student} has a score but no result.json")
            continue
        try:
            verify(data, public_key)
        except SignatureError as exc:
            problems.append(f"{result_path}: {exc}")
            continue
        expected = _csv_row(row_from_result(student, data, data["max_score"]), check_ids)
        if cells != expected:
            problems.append(f"{path}:{line}: {student}'s row differs from its signed result")
    return problems


async def grade_class(
    lab_path: Path,
    roster: Path,
    submissions: Path,
    out: Path,
    *,
    parallel: int = 2,
    show_progress: bool = True,
    grader: StudentGrader | None = None,
) -> list[GradebookRow]:
    """Grade the roster with `grader` (default: LocalGrader(parallel)); write gradebook.csv."""
    lab = load_lab(lab_path)
    students = read_roster(roster)
    lab_path, submissions = _absolute(lab_path, submissions)
    chosen = grader or LocalGrader(parallel)
    with Progress(disable=not show_progress, transient=False) as progress:
        task = progress.add_task(f"grading {lab.id}", total=len(students))

        async def one(student: str) -> GradebookRow:
            row = await _grade_student(
                chosen,
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
