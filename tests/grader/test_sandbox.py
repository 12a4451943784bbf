"""Hostile submissions against the sandbox, over real grading runs (net-01, 6 s each).

Each test grades a submission that attacks the grader and asserts what it could not do:
read a secret, read the signing key, write outside its workspace, outlive the run, or
exhaust the machine without the result saying why.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.pipeline import grade_one
from grader.results import Result
from grader.sandbox.kinds import bubblewrap_problem
from grader.sandbox.processes import all_pids
from grader.signing import write_new_key
from iiotlab.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
LAB = "net-01-modbus-datasheet"
SECRET = "topsecret-course-7f3a9c"
KINDS = [
    pytest.param(
        "bubblewrap",
        marks=pytest.mark.skipif(
            bubblewrap_problem() is not None, reason=str(bubblewrap_problem())
        ),
    ),
    "none",
]
ALLOWED = {"PATH", "HOME", "TMPDIR", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}


def short_lab(tmp_path: Path, **overrides: Any) -> Path:
    """net-01 (6 s) with lab.yaml keys overridden, in a folder of its own."""
    folder = tmp_path / "labs" / LAB
    shutil.copytree(ROOT / "labs" / LAB, folder)
    data = yaml.safe_load((folder / "lab.yaml").read_text())
    data.update(overrides)
    (folder / "lab.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


def submission(tmp_path: Path, script: str, name: str = "mallory") -> Path:
    folder = tmp_path / "submissions" / name
    folder.mkdir(parents=True)
    (folder / "run.sh").write_text(script)
    return folder


async def grade(
    tmp_path: Path, script: str, sandbox: str, monkeypatch: pytest.MonkeyPatch, **lab: Any
) -> tuple[Result, str]:
    key_file = tmp_path / "data" / "keys" / "grader.pem"  # inside the hidden data folder too
    write_new_key(key_file)
    monkeypatch.setenv("IIOTLAB_COURSE_SECRET", SECRET)
    monkeypatch.setenv("IIOTLAB_SIGNING_KEY", str(key_file))
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out" / "mallory"
    result = await grade_one(
        short_lab(tmp_path, **lab),
        "mallory",
        out=out,
        submission=submission(tmp_path, script),
        settings=Settings.from_env(),
        sandbox=sandbox,
        hide=[tmp_path / "submissions"],
    )
    return result, (out / "gateway.log").read_text(errors="replace")


def running_with(marker: str) -> list[int]:
    found = []
    for pid in all_pids():
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("sandbox", KINDS)
async def test_environment_holds_only_the_contract(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, log = await grade(tmp_path, "env; sleep 30\n", sandbox, monkeypatch)
    assert SECRET not in log and "IIOTLAB_SIGNING_KEY" not in log and "COURSE_SECRET" not in log
    names = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", log, re.MULTILINE))
    contract = {n for n in names if n.startswith("IIOTLAB_")}
    assert "IIOTLAB_MQTT_URL" in contract and "IIOTLAB_DATASHEET" in contract
    assert names - contract <= ALLOWED, names - contract
    assert str(tmp_path / "out") not in log  # no path points into the out folder
    assert result.gradable and result.sandbox is not None and result.sandbox["kind"] == sandbox


@pytest.mark.parametrize("sandbox", KINDS)
async def test_a_setsid_daemon_is_dead_when_grading_returns(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"987.{os.getpid()}{len(sandbox)}"
    script = f"setsid sh -c '(sleep {marker} &) ; sleep {marker}' &\nsleep 30\n"
    result, _ = await grade(tmp_path, script, sandbox, monkeypatch)
    assert result.gradable
    assert running_with(f"sleep\0{marker}") == []


@pytest.mark.skipif(bubblewrap_problem() is not None, reason=str(bubblewrap_problem()))
async def test_key_file_unreadable_and_writes_outside_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "submissions" / "victim"
    victim.mkdir(parents=True)
    (victim / "gateway.cmd").write_text("python secret_gateway.py\n")
    keys, out = tmp_path / "data" / "keys", tmp_path / "out"
    script = f"""
cat {keys}/grader.pem && echo READ-KEY
cat {tmp_path}/data/*.pem && echo READ-DEV-KEY
cat {victim}/gateway.cmd && echo READ-VICTIM
ls {out}/mallory && echo LISTED-OUT
echo forged > {out}/mallory/result.json && echo WROTE-RESULT
echo x > {out}/forged.txt && echo WROTE-OUT
echo x > {victim}/gateway.cmd && echo WROTE-VICTIM
echo x > {ROOT}/forged.txt && echo WROTE-REPO
echo x > "$IIOTLAB_STATE_DIR/mine.txt" && echo WROTE-STATE
sleep 30
"""
    result, log = await grade(tmp_path, script, "bubblewrap", monkeypatch)
    assert "PRIVATE KEY" not in log and "READ-KEY" not in log and "READ-DEV-KEY" not in log
    assert "READ-VICTIM" not in log and "LISTED-OUT" not in log
    for wrote in ("WROTE-RESULT", "WROTE-VICTIM", "WROTE-REPO"):
        assert wrote not in log  # ({out}/forged.txt lands in the sandbox's private /tmp)
    assert "WROTE-STATE" in log  # its own state folder is writable
    assert not (out / "forged.txt").exists() and not (ROOT / "forged.txt").exists()
    assert (victim / "gateway.cmd").read_text() == "python secret_gateway.py\n"
    assert result.gradable and result.signature


@pytest.mark.parametrize("sandbox", KINDS)
async def test_a_bounded_fork_bomb_is_stopped_and_the_result_says_why(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"555.{os.getpid()}{len(sandbox)}"
    script = f"i=0; while [ $i -lt 200 ]; do sleep {marker} & i=$((i+1)); done; wait\n"
    result, _ = await grade(tmp_path, script, sandbox, monkeypatch)
    assert result.gradable and result.sandbox is not None
    events = result.sandbox["events"]
    assert [e["limit"] for e in events] == ["processes"], events
    assert "processes" in events[0]["en"] and "进程" in events[0]["zh"]
    report = (tmp_path / "out" / "mallory" / "report.html").read_text()
    assert events[0]["zh"] in report and f"<code>{sandbox}</code>" in report
    assert running_with(f"sleep\0{marker}") == []


@pytest.mark.parametrize("sandbox", KINDS)
async def test_log_spam_is_cut_with_a_note(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "head -c 100000000 /dev/zero | tr '\\0' x; sleep 30\n"
    result, log = await grade(tmp_path, script, sandbox, monkeypatch, limits={"log_mb": 2})
    size = (tmp_path / "out" / "mallory" / "gateway.log").stat().st_size
    assert 2 * 2**20 <= size < 2 * 2**20 + 4096
    assert "gateway.log cut at 2 MiB" in log
    assert result.gradable and result.sandbox is not None
    assert [e["limit"] for e in result.sandbox["events"]] == ["log"]


@pytest.mark.parametrize("sandbox", KINDS)
async def test_memory_over_all_processes_is_limited(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hog = "python3 -c \"import time; b = b'x' * (120 * 2**20); time.sleep(60)\""
    script = f"for i in 1 2 3 4 5 6; do {hog} & done; wait\n"
    result, _ = await grade(tmp_path, script, sandbox, monkeypatch, limits={"memory_mb": 400})
    assert result.gradable and result.sandbox is not None
    assert [e["limit"] for e in result.sandbox["events"]] == ["memory"]


@pytest.mark.parametrize("sandbox", KINDS)
async def test_disk_in_the_state_folder_is_limited(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = 'head -c 40000000 /dev/zero > "$IIOTLAB_STATE_DIR/fill"; sleep 30\n'
    result, _ = await grade(tmp_path, script, sandbox, monkeypatch, limits={"disk_mb": 16})
    assert result.gradable and result.sandbox is not None
    assert [e["limit"] for e in result.sandbox["events"]] == ["disk"]


async def test_grading_refuses_without_the_sandbox_it_requires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bubblewrap_problem.cache_clear()
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    try:
        result, _ = await asyncio.wait_for(grade_without_log(tmp_path, monkeypatch), timeout=60)
    finally:
        bubblewrap_problem.cache_clear()
    assert not result.gradable and "bubblewrap" in (result.reason or "")
    assert result.signature


async def grade_without_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Result, None]:
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    result = await grade_one(
        short_lab(tmp_path),
        "mallory",
        out=tmp_path / "out",
        submission=submission(tmp_path, "sleep 30\n"),
        settings=Settings.from_env(),
        sandbox="bubblewrap",
    )
    return result, None


@pytest.mark.skipif(bubblewrap_problem() is not None, reason="no bubblewrap")
async def test_programs_installed_under_tmp_stay_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grader (or gateway tool) installed under /tmp is not hidden by the private /tmp."""
    tools = tmp_path / "venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "my-gateway").write_text("#!/bin/sh\necho HELLO-FROM-TMP\nsleep 30\n")
    (tools / "my-gateway").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    result, log = await grade(tmp_path, "my-gateway\n", "bubblewrap", monkeypatch)
    assert "HELLO-FROM-TMP" in log and result.gradable
