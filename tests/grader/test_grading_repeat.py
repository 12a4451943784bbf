"""Repeatability: the same submission graded 5 times, and a class of 6 graded with
--parallel 3 and one by one, give the same scores (net-01: a 6 s lab)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grader.classmode import grade_class
from grader.pipeline import grade_one
from grader.signing import write_new_key
from iiotlab.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "net-01-modbus-datasheet"
EDGE_SOLUTION = ROOT / "labs" / "edge-01-modbus-to-mqtt" / "solution"
FAULTY = Path(__file__).with_name("faulty_gateway.py")
WORD_ORDER = f"{sys.executable} {FAULTY} {EDGE_SOLUTION} word-order"


@pytest.mark.timeout(150)
async def test_regrading_five_times_gives_the_same_score(tmp_path: Path) -> None:
    key = write_new_key(tmp_path / "key.pem")
    settings = Settings(data_dir=tmp_path)
    scores = []
    for attempt in range(5):
        result = await grade_one(
            LAB,
            "rita",
            out=tmp_path / f"run{attempt}",
            gateway_cmd=WORD_ORDER,
            settings=settings,
            key=key,
        )
        assert result.gradable, result.reason
        scores.append((result.score, [c.points for c in result.checks]))
    assert len(set(map(str, scores))) == 1, scores
    assert 0 < scores[0][0] < 100  # one tag wrong: partial credit, every time


def make_class(tmp_path: Path) -> tuple[Path, Path]:
    students = [f"s{i:02d}" for i in range(1, 7)]
    for index, student in enumerate(students):
        folder = tmp_path / "submissions" / student
        folder.mkdir(parents=True)
        command = WORD_ORDER if index % 3 == 0 else "iiotlab gateway run --from-env"
        (folder / "gateway.cmd").write_text(command + "\n")
    roster = tmp_path / "roster.csv"
    roster.write_text("student\n" + "\n".join(students) + "\n")
    return roster, tmp_path / "submissions"


@pytest.mark.timeout(200)
async def test_class_parallel_equals_one_by_one(tmp_path: Path) -> None:
    roster, submissions = make_class(tmp_path)
    parallel = await grade_class(
        LAB, roster, submissions, tmp_path / "parallel", parallel=3, show_progress=False
    )
    serial = await grade_class(
        LAB, roster, submissions, tmp_path / "serial", parallel=1, show_progress=False
    )
    assert all(row.gradable for row in parallel + serial), [r.status for r in parallel + serial]
    assert [(r.student, r.score, r.points) for r in parallel] == [
        (r.student, r.score, r.points) for r in serial
    ]
    scores = {r.student: r.score for r in parallel}
    assert scores["s02"] == 100 and scores["s01"] is not None and scores["s01"] < 100
