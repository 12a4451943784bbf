"""Full grading runs of edge-01 (real simulator, broker, gateway subprocesses), in class mode.

One class run covers: the reference gateway (full marks), one fault per gateway (exactly
the covering check loses points, its evidence names the fault), a student without a
submission, the gradebook, signed results. The solution on three students, the starter
and the lab's mutants are graded by tests/labs/test_curriculum.py.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from grader.classmode import grade_class
from grader.results import read_result_data

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "edge-01-modbus-to-mqtt"
FAULTY = Path(__file__).with_name("faulty_gateway.py")
FAULTS = {
    "dave": ("word-order", "values"),
    "erin": ("no-store-forward", "store-and-forward"),
    "frank": ("no-heartbeat", "deadband"),
}
REFERENCE = ("alice",)  # three students: tests/labs/test_curriculum.py


def make_class(tmp_path: Path) -> tuple[Path, Path]:
    submissions = tmp_path / "submissions"
    for student in REFERENCE:
        folder = submissions / student
        folder.mkdir(parents=True)
        (folder / "gateway.cmd").write_text(f"{sys.executable} {LAB / 'solution' / 'gateway.py'}\n")
    for student, (fault, _) in FAULTS.items():
        folder = submissions / student
        folder.mkdir(parents=True)
        (folder / "gateway.cmd").write_text(
            f"# reference with one fault\n{sys.executable} {FAULTY} {LAB / 'solution'} {fault}\n"
        )
    (submissions / "grace").mkdir()  # handed in nothing
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "student,name\n" + "".join(f"{s},{s.title()}\n" for s in (*REFERENCE, *FAULTS, "grace"))
    )
    return roster, submissions


@pytest.mark.timeout(240)
async def test_reference_full_marks_and_each_fault_loses_its_check(tmp_path: Path) -> None:
    roster, submissions = make_class(tmp_path)
    out = tmp_path / "out"
    rows = await grade_class(LAB, roster, submissions, out, parallel=4, show_progress=False)
    by_student = {row.student: row for row in rows}
    logs = {s: (out / s / "gateway.log") for s in by_student}
    for student in REFERENCE:
        row = by_student[student]
        failed = [
            c for c in read_result_data(out / student / "result.json")["checks"] if not c["passed"]
        ]
        assert row.gradable and row.score == row.max_score == 100, (failed, logs[student])
    for student, (fault, covering) in FAULTS.items():
        row = by_student[student]
        assert row.gradable, row
        result = read_result_data(out / student / "result.json")
        lost = {c["id"]: c for c in result["checks"] if not c["passed"]}
        assert set(lost) == {covering}, (fault, {k: v["message"] for k, v in lost.items()})
        assert 0 <= lost[covering]["points"] < lost[covering]["max_points"]
        if fault == "word-order":
            wrong = [v for v in lost["values"]["evidence"]["saw"].values() if "diagnosis" in v]
            assert len(wrong) == 1 and wrong[0]["diagnosis"].startswith("word order: decoded as")
            assert "<svg" in (out / student / "report.html").read_text()
        if fault == "no-store-forward":
            assert lost[covering]["evidence"]["saw"]["gaps"]
        if fault == "no-heartbeat":
            assert lost[covering]["evidence"]["saw"]["silences"]
    assert by_student["grace"].status == "no submission"
    gradebook = list(csv.DictReader((out / "gradebook.csv").open()))
    assert [r["student"] for r in gradebook] == [*REFERENCE, *FAULTS, "grace"]
    assert gradebook[0]["score"] == "100" and gradebook[0]["values"] == "30"
    assert gradebook[-1]["status"] == "no submission"
    signed = json.loads((out / "alice" / "result.json").read_text())
    assert signed["signature"].startswith("ed25519:") and signed["seed"]
