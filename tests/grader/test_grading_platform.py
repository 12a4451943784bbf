"""Full grading runs of plat-01: the grader starts the platform, the submission provisions it.

The solution scores full marks; the untouched starter (no device, identifier or rule) loses
the identifier and alarm checks and nothing else, with evidence that says why.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from grader.classmode import grade_class
from grader.results import read_result_data

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "plat-01-alarms-and-identifiers"
IIOTLAB = Path(sys.executable).with_name("iiotlab")


def submission(root: Path, student: str, source: str) -> None:
    folder = root / student
    shutil.copytree(LAB / source, folder)
    (folder / "gateway.cmd").write_text(
        f"{sys.executable} provision.py && exec {IIOTLAB} gateway run --from-env\n"
    )


@pytest.mark.timeout(200)
async def test_solution_full_marks_and_starter_loses_platform_checks(tmp_path: Path) -> None:
    submissions = tmp_path / "submissions"
    submission(submissions, "alice", "solution")
    submission(submissions, "bob", "starter")
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nalice\nbob\n")
    out = tmp_path / "out"
    rows = {
        row.student: row
        for row in await grade_class(LAB, roster, submissions, out, parallel=2, show_progress=False)
    }
    alice = read_result_data(out / "alice" / "result.json")
    failed = {c["id"]: c["evidence"] for c in alice["checks"] if not c["passed"]}
    assert rows["alice"].score == rows["alice"].max_score == 100, (failed, out)
    checks = {c["id"]: c for c in alice["checks"]}
    assert checks["alarm"]["evidence"]["saw"]["delay_ms"] <= 5000
    assert checks["identifier"]["evidence"]["saw"]["device"] == "tank-1"
    assert len(checks["aggregate"]["evidence"]["saw"]["buckets"]) >= 3

    bob = {c["id"]: c for c in read_result_data(out / "bob" / "result.json")["checks"]}
    assert rows["bob"].gradable
    assert {k for k, c in bob.items() if not c["passed"]} == {"identifier", "alarm"}
    assert bob["identifier"]["points"] == 0
    assert bob["identifier"]["evidence"]["saw"]["status"] == 404
    assert "register it first" in bob["identifier"]["evidence"]["saw"]["detail"]
    # the spike happened, no rule raised an alarm on it
    assert (
        bob["alarm"]["evidence"]["saw"]["event_ts"]
        and not bob["alarm"]["evidence"]["saw"]["alarms"]
    )
    assert 0 < bob["alarm"]["points"] < bob["alarm"]["max_points"]
