"""Full grading runs of plat-01: the grader starts the platform, the submission provisions it.

The solution scores full marks; the untouched starter (no device, identifier or rule) loses
the identifier and alarm checks and nothing else, with evidence that says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.grader.grading_helpers import grade_folders

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "plat-01-alarms-and-identifiers"
IIOTLAB = Path(sys.executable).with_name("iiotlab")


@pytest.mark.timeout(200)
async def test_solution_full_marks_and_starter_loses_platform_checks(tmp_path: Path) -> None:
    command = f"{sys.executable} provision.py && exec {IIOTLAB} gateway run --from-env"
    rows, results = await grade_folders(
        LAB, tmp_path, {"alice": ("solution", command), "bob": ("starter", command)}
    )
    checks, bob = results["alice"], results["bob"]
    failed = {k: c["evidence"] for k, c in checks.items() if not c["passed"]}
    assert rows["alice"].score == rows["alice"].max_score == 100, failed
    assert checks["alarm"]["evidence"]["saw"]["delay_ms"] <= 5000
    assert checks["identifier"]["evidence"]["saw"]["device"] == "tank-1"
    assert len(checks["aggregate"]["evidence"]["saw"]["buckets"]) >= 3

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
    assert bob["alarm"]["points"] == 0  # the spike is the grader's doing: it earns nothing
