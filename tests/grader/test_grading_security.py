"""sec-01 full runs: an anonymous broker, a gateway on plain OPC UA, each losing exactly its
check with the evidence that says why. (The solution's full marks on three students:
tests/labs/test_curriculum.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grader.classmode import grade_class
from grader.results import read_result_data

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "sec-01-broker-hardening"
SOLUTION = LAB / "solution"
FAULTY = Path(__file__).with_name("faulty_gateway.py")


def submission(root: Path, student: str, *, anonymous: bool, plain_opcua: bool) -> None:
    folder = root / student
    folder.mkdir(parents=True)
    policy = (SOLUTION / "broker.yaml").read_text().replace("STUDENT_ID", student)
    if anonymous:
        policy = policy.replace("allow_anonymous: false", "allow_anonymous: true")
    (folder / "broker.yaml").write_text(policy)
    fault = "plain-opcua" if plain_opcua else "none"
    (folder / "gateway.cmd").write_text(f"{sys.executable} {FAULTY} {SOLUTION} {fault}\n")


@pytest.mark.timeout(150)
async def test_security_lab_scores_each_fault_on_its_check(tmp_path: Path) -> None:
    submissions = tmp_path / "submissions"
    submission(submissions, "ann", anonymous=True, plain_opcua=False)
    submission(submissions, "pat", anonymous=False, plain_opcua=True)
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nann\npat\n")
    rows = {
        r.student: r
        for r in await grade_class(
            LAB, roster, submissions, tmp_path / "out", parallel=3, show_progress=False
        )
    }
    assert all(row.gradable for row in rows.values()), rows
    results = {s: read_result_data(tmp_path / "out" / s / "result.json") for s in ("ann", "pat")}
    failed = {s: {c["id"]: c for c in r["checks"] if not c["passed"]} for s, r in results.items()}
    assert set(failed["ann"]) == {"broker"}, failed["ann"]
    assert failed["ann"]["broker"]["points"] == 32
    assert "ACCEPTED" in failed["ann"]["broker"]["evidence"]["saw"]["anonymous"]
    assert set(failed["pat"]) == {"opcua"}, failed["pat"]
    assert any(s["policy"] == "None" for s in failed["pat"]["opcua"]["evidence"]["saw"])
