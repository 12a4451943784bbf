"""Class mode against a hostile classmate, and student errors that still give a result.

Real class runs of net-01 (6 s): a saboteur beside a victim running the solution; and
students whose submissions cannot run at all.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from grader.classmode import grade_class, verify_gradebook
from grader.results import read_result_data
from grader.sandbox.kinds import bubblewrap_problem
from grader.signing import load_signing_key, verify
from iiotlab.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
NET01 = ROOT / "labs" / "net-01-modbus-datasheet"
SEC01 = ROOT / "labs" / "sec-01-broker-hardening"


def roster(tmp_path: Path, students: list[str]) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text("student\n" + "".join(f"{s}\n" for s in students))
    return path


@pytest.mark.skipif(bubblewrap_problem() is not None, reason="no bubblewrap")
async def test_a_saboteur_cannot_reach_a_classmate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IIOTLAB_SANDBOX", "bubblewrap")
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    shutil.copytree(NET01 / "solution", submissions / "victim")
    saboteur = submissions / "saboteur"
    saboteur.mkdir(parents=True)
    # a student who guessed every path: classmates' folders, results, the gradebook
    (saboteur / "run.sh").write_text(
        f"""
echo ATTACK-RAN
for i in 1 2 3 4 5 6 7 8; do
  cat {submissions}/victim/gateway.cmd && echo READ-VICTIM-SUBMISSION
  cat {out}/victim/result.json && echo READ-VICTIM-RESULT
  ls {out}/victim && echo LISTED-VICTIM-OUT
  echo 'saboteur,100,100' >> {out}/gradebook.csv && echo WROTE-GRADEBOOK
  cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep IIOTLAB_MQTT_URL
  sleep 0.5
done
sleep 30
"""
    )
    rows = await grade_class(
        NET01, roster(tmp_path, ["victim", "saboteur"]), submissions, out, show_progress=False
    )
    log = (out / "saboteur" / "gateway.log").read_text()
    assert "ATTACK-RAN" in log
    for marker in ("READ-VICTIM", "LISTED-VICTIM-OUT", "WROTE-GRADEBOOK", "gw-victim"):
        assert marker not in log, log
    by_student = {row.student: row for row in rows}
    assert by_student["victim"].score == 100 and by_student["saboteur"].score == 0
    key = load_signing_key(Settings.from_env()).private.public_key()
    assert verify_gradebook(out, key) == []
    # an edited row of the unsigned gradebook is caught against the signed results
    gradebook = out / "gradebook.csv"
    table = list(csv.reader(gradebook.open()))
    table[2][1] = "100"
    with gradebook.open("w", newline="") as handle:
        csv.writer(handle).writerows(table)
    problems = verify_gradebook(out, key)
    assert len(problems) == 1 and "saboteur's row differs" in problems[0]


async def test_student_errors_give_signed_results_with_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    (submissions / "empty").mkdir(parents=True)
    (submissions / "empty" / "gateway.cmd").write_text("# I will write it later\n\n")
    (submissions / "crash").mkdir()
    (submissions / "crash" / "gateway.cmd").write_text(
        f'{sys.executable} -c "raise SystemExit(3)"\n'
    )
    rows = await grade_class(
        NET01, roster(tmp_path, ["empty", "crash"]), submissions, out, show_progress=False
    )
    by_student = {row.student: row for row in rows}
    key = load_signing_key(Settings.from_env()).private.public_key()
    empty = read_result_data(out / "empty" / "result.json")
    verify(empty, key)
    assert empty["gradable"] and empty["score"] == 0
    assert "gateway.cmd has no command line" in empty["submission_error"]["en"]
    assert "你的提交" in empty["submission_error"]["zh"]
    assert all(c["message"].startswith("not run:") for c in empty["checks"])
    assert "gateway.cmd has no command line" in by_student["empty"].status
    assert empty["submission_error"]["zh"] in (out / "empty" / "report.html").read_text()
    crash = read_result_data(out / "crash" / "result.json")
    assert crash["gradable"] and crash["score"] == 0
    assert (
        "exited by itself" in by_student["crash"].status and "code 3" in by_student["crash"].status
    )
    assert verify_gradebook(out, key) == []


async def test_a_broken_broker_policy_gives_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grader.pipeline import grade_one

    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "sub"
    shutil.copytree(SEC01 / "solution", folder)
    (folder / "broker.yaml").write_text("allow_anonymous: [not, a, bool\n")
    result = await grade_one(
        SEC01, "bob", out=tmp_path / "out", submission=folder, settings=Settings.from_env()
    )
    assert result.gradable and result.score == 0 and result.signature
    assert result.submission_error is not None and "broker.yaml" in result.submission_error["en"]
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert saved["submission_error"] == result.submission_error
