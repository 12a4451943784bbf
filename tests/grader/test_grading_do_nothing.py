"""A submission that does nothing scores 0 on every lab in labs/ (real gradings).

"Does nothing": the lab's starter folder handed in unchanged except that `gateway.cmd` is
`sleep 600`: no gateway, no proxy, no provisioning. Security labs that read a broker policy
from the submission get the starter's broker.yaml, as the student received it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.grader.grading_helpers import grade_folders

pytestmark = pytest.mark.integration

LABS = sorted(p for p in (Path(__file__).resolve().parents[2] / "labs").iterdir() if p.is_dir())
LAB_FOLDERS = [lab for lab in LABS if (lab / "lab.yaml").is_file()]


@pytest.mark.timeout(300)
async def test_a_submission_that_does_nothing_scores_zero_on_every_lab(tmp_path: Path) -> None:
    assert len(LAB_FOLDERS) >= 5
    started = time.monotonic()
    graded = await asyncio.gather(
        *(
            grade_folders(lab, tmp_path / lab.name, {"idle": ("starter", "sleep 600")})
            for lab in LAB_FOLDERS
        )
    )
    scored = {}
    for lab, (rows, checks) in zip(LAB_FOLDERS, graded, strict=True):
        row = rows["idle"]
        assert row.gradable, (lab.name, row)
        earned = {i: (c["points"], c["message"]) for i, c in checks["idle"].items() if c["points"]}
        scored[lab.name] = (row.score, earned)
    earning = {lab: got for lab, got in scored.items() if got[0]}
    assert not earning, earning
    print(f"\n{len(LAB_FOLDERS)} labs graded in {time.monotonic() - started:.0f} s")
