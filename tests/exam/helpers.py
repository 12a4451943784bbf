"""Run `iiotlab exam serve` for real, and a candidate's reference gateway against it."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from grader.signing import write_new_key

LAB = "net-01-modbus-datasheet"
EXAM = """\
id: test-exam
title: {{en: "Network engineer: practical", zh: "网络工程师实操考核"}}
position: 1
time_limit_min: {minutes}
pass_mark: 60
feedback: {feedback}
counts: best
tasks:
  - {{lab: {lab}, points: 100, attempts: 2}}
"""


@dataclass
class RunningExam:
    process: asyncio.subprocess.Process
    ready: dict[str, str]
    out: Path
    key_file: Path
    env: dict[str, str]

    @property
    def base(self) -> str:
        return self.ready["portal"].rstrip("/")

    def codes(self) -> dict[str, str]:
        with Path(self.ready["codes"]).open(newline="", encoding="utf-8") as handle:
            return {row["student"]: row["code"] for row in csv.DictReader(handle)}

    def proctor_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ready['proctor_token']}"}

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def iiotlab_command() -> list[str]:
    return [sys.executable, "-m", "iiotlab.cli"]


async def start_exam(
    tmp: Path,
    students: list[str],
    *,
    feedback: str = "full",
    minutes: float = 30,
    lab: str = LAB,
    ready_s: float = 90,
    host: str = "127.0.0.1",
) -> RunningExam:
    exam = tmp / "exam.yaml"
    exam.write_text(EXAM.format(feedback=feedback, minutes=minutes, lab=lab), encoding="utf-8")
    roster = tmp / "roster.csv"
    roster.write_text("student\n" + "".join(f"{s}\n" for s in students), encoding="utf-8")
    key_file = tmp / "signing.pem"
    write_new_key(key_file)
    env = {
        **os.environ,
        "IIOTLAB_SIGNING_KEY": str(key_file),
        "IIOTLAB_DATA_DIR": str(tmp / "data"),
        "IIOTLAB_COURSE_SECRET": "exam-test-secret",
    }
    out = tmp / "out"
    process = await asyncio.create_subprocess_exec(
        *iiotlab_command(), "exam", "serve", str(exam), "--roster", str(roster),
        "--out", str(out), "--host", host, "--port", "0", "--json",
        "--wait-gateway", "20",
        stdout=asyncio.subprocess.PIPE, stderr=(tmp / "serve.log").open("wb"), env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), ready_s)
    except TimeoutError:
        process.kill()
        raise
    if not line:
        await process.wait()
        raise AssertionError((tmp / "serve.log").read_text(encoding="utf-8"))
    return RunningExam(process, json.loads(line), out, key_file, env)


async def stop_all(gateways: list[asyncio.subprocess.Process], exam: RunningExam) -> None:
    """The candidates' gateways still running, then the exam server."""
    for gateway in gateways:
        if gateway.returncode is None:
            gateway.terminate()
            await gateway.wait()
    await exam.stop()


async def login(client: httpx.AsyncClient, code: str) -> dict[str, str]:
    response = await client.post("/api/login", json={"code": code})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def parse_env(text: str) -> dict[str, str]:
    variables = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        (variables[name],) = shlex.split(value) or [""]
    return variables


async def start_reference_gateway(
    client: httpx.AsyncClient, headers: dict[str, str], task: str, folder: Path
) -> asyncio.subprocess.Process:
    """As a candidate: download gateway.env and the datasheet, run the reference gateway."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's tmp folder)
    env_text = (await client.get(f"/api/tasks/{task}/gateway.env", headers=headers)).text
    (folder / "gateway.env").write_text(env_text, encoding="utf-8")
    sheet = await client.get(f"/api/tasks/{task}/datasheet", headers=headers)
    sheet.raise_for_status()
    (folder / "datasheet.json").write_text(sheet.text, encoding="utf-8")
    return await run_gateway(folder)


async def run_gateway(folder: Path) -> asyncio.subprocess.Process:
    """The reference gateway, started with the gateway.env in `folder` (as a candidate does)."""
    env_text = (folder / "gateway.env").read_text(encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), **parse_env(env_text)}
    return await asyncio.create_subprocess_exec(
        *iiotlab_command(), "gateway", "run", "--from-env",
        cwd=folder, env=env,
        stdout=(folder / "gateway.log").open("wb"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def wait_graded(
    client: httpx.AsyncClient, headers: dict[str, str], attempt: str, limit_s: float = 120
) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        while True:
            view: dict[str, Any] = (
                await client.get(f"/api/attempts/{attempt}", headers=headers)
            ).json()
            if view["state"] != "running":
                return view
            await asyncio.sleep(0.5)


async def wait_phase(
    client: httpx.AsyncClient, headers: dict[str, str], attempt: str, limit_s: float = 120
) -> None:
    """Until the attempt waits for the candidate's (re)started gateway."""
    async with asyncio.timeout(limit_s):
        while True:
            view = (await client.get(f"/api/attempts/{attempt}", headers=headers)).json()
            if view.get("phase") == "waiting_gateway":
                return
            assert view["state"] == "running", view
            await asyncio.sleep(0.2)
