"""Helpers for the full grading tests: a class of submissions copied from a lab's folders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from grader.classmode import GradebookRow, grade_class
from grader.gateway_process import GatewayProcess
from grader.results import read_result_data
from grader.sandbox import PlainSandbox, RunLimits, Sandbox, Workspace


async def grade_folders(
    lab: Path, tmp_path: Path, folders: dict[str, tuple[str, str]]
) -> tuple[dict[str, GradebookRow], dict[str, dict[str, dict[str, Any]]]]:
    """Grade {student: (lab sub-folder to copy, gateway.cmd line)} in one class run.

    Returns the gradebook rows and, per student, the result's checks by id.
    """
    submissions = tmp_path / "submissions"
    for student, (source, command) in folders.items():
        shutil.copytree(lab / source, submissions / student)
        (submissions / student / "gateway.cmd").write_text(command + "\n")
    roster = tmp_path / "roster.csv"
    roster.write_text("student\n" + "".join(f"{s}\n" for s in folders))
    out = tmp_path / "out"
    rows = await grade_class(lab, roster, submissions, out, parallel=2, show_progress=False)
    checks = {
        row.student: {
            c["id"]: c for c in read_result_data(out / row.student / "result.json")["checks"]
        }
        for row in rows
    }
    return {row.student: row for row in rows}, checks


def gateway_process(
    folder: Path,
    command: str,
    env: dict[str, str] | None = None,
    *,
    limits: RunLimits | None = None,
    sandbox: Sandbox | None = None,
) -> GatewayProcess:
    """A GatewayProcess on its own, in a fresh workspace, logging to folder/gateway.log."""
    datasheet = folder / "datasheet.json"
    datasheet.write_text("{}")
    return GatewayProcess(
        command,
        sandbox=sandbox or PlainSandbox(),
        workspace=Workspace.create(None, datasheet, None),
        cwd=folder,
        env=env or {},
        log_file=folder / "gateway.log",
        limits=limits or RunLimits(),
    )
