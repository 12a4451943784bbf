"""edge-01 under CPU load: the solution scores 100 every time, each fault loses its check.

stress-ng hogs both cores of a CI machine while the reference gateway (three students)
and one gateway per fault are graded at once. What must hold on a busy machine: nothing
in a check may depend on how fast the gateway reconnects, samples or replays.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.classmode import GradebookRow, grade_class
from grader.results import read_result_data

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "edge-01-modbus-to-mqtt"
FAULTY = Path(__file__).with_name("faulty_gateway.py")
# student: (fault, the check it loses, other checks it may also lose)
FAULTS = {
    "dave": ("word-order", "values", set()),
    "erin": ("no-store-forward", "store-and-forward", set()),
    "frank": ("no-heartbeat", "deadband", set()),
    # a re-stamped replay also carries values at the wrong ts
    "gina": ("restamp", "store-and-forward", {"values"}),
}
REFERENCE = ("alice", "bob", "carol")


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    if shutil.which("stress-ng") is None:
        pytest.skip("stress-ng is not installed (Debian package stress-ng)")
    hog = subprocess.Popen(
        ["stress-ng", "--cpu", "2", "--timeout", "300s", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        hog.terminate()
        try:
            hog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hog.kill()
            hog.wait()


async def grade_at_once(
    tmp_path: Path, commands: dict[str, str]
) -> tuple[dict[str, GradebookRow], dict[str, dict[str, dict[str, Any]]]]:
    """Grade {student: gateway.cmd line} in one class run, every student at once."""
    submissions = tmp_path / "submissions"
    for student, command in commands.items():
        (submissions / student).mkdir(parents=True)
        (submissions / student / "gateway.cmd").write_text(command + "\n")
    roster = tmp_path / "roster.csv"
    roster.write_text("student\n" + "".join(f"{s}\n" for s in commands))
    out = tmp_path / "out"
    rows = await grade_class(
        LAB, roster, submissions, out, parallel=len(commands), show_progress=False
    )
    checks = {
        row.student: {
            c["id"]: c for c in read_result_data(out / row.student / "result.json")["checks"]
        }
        for row in rows
    }
    return {row.student: row for row in rows}, checks


@pytest.mark.timeout(420)
@pytest.mark.usefixtures("cpu_hog")
async def test_edge_lab_under_cpu_load(tmp_path: Path) -> None:
    started = time.monotonic()
    solution = f"{sys.executable} {LAB / 'solution' / 'gateway.py'}"
    commands = {s: solution for s in REFERENCE}
    for student, (fault, _, _) in FAULTS.items():
        commands[student] = f"{sys.executable} {FAULTY} {LAB / 'solution'} {fault}"
    rows, checks = await grade_at_once(tmp_path, commands)
    lost = {s: {i: c for i, c in checks[s].items() if not c["passed"]} for s in rows}
    messages = {s: {i: c["message"] for i, c in lost[s].items()} for s in rows}
    for student in REFERENCE:
        assert rows[student].gradable and rows[student].score == 100, messages[student]
    for student, (fault, covering, also) in FAULTS.items():
        assert rows[student].gradable, rows[student]
        assert covering in lost[student], (fault, messages[student])
        assert set(lost[student]) - also == {covering}, (fault, messages[student])
    restamped = lost["gina"]["store-and-forward"]["message"]
    assert "keep their sampling ts" in restamped and "replayed=true" not in restamped
    print(
        f"\n{len(commands)} gradings under stress-ng --cpu 2 in {time.monotonic() - started:.0f} s"
    )
