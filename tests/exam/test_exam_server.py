"""`iiotlab exam serve` for real: two candidates over HTTP, the reference gateway against
their own live plant, grading, proctor actions, the end, certificates and the audit log."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.exam.helpers import (
    iiotlab_command,
    login,
    run_gateway,
    start_exam,
    start_reference_gateway,
    stop_all,
    wait_graded,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
TASK = "net-01-modbus-datasheet"


async def test_two_candidates_through_the_exam(tmp_path: Path) -> None:
    exam = await start_exam(tmp_path, ["s1", "s2"])
    gateways: list[asyncio.subprocess.Process] = []
    try:
        codes = exam.codes()
        async with httpx.AsyncClient(base_url=exam.base, timeout=30) as client:
            h1, h2 = await login(client, codes["s1"]), await login(client, codes["s2"])
            me1 = (await client.get("/api/me", headers=h1)).json()
            me2 = (await client.get("/api/me", headers=h2)).json()
            assert me1["student"] == "s1" and me2["student"] == "s2"
            env1, env2 = me1["tasks"][0]["env"], me2["tasks"][0]["env"]
            assert env1["IIOTLAB_DATASHEET"] == "datasheet.json"
            assert env1["IIOTLAB_TENANT"] == "s1" and env2["IIOTLAB_TENANT"] == "s2"
            assert env1["IIOTLAB_MODBUS_PORT"] != env2["IIOTLAB_MODBUS_PORT"]
            # each candidate's own plant: the datasheets differ (per-student variants)
            sheet1 = (await client.get(f"/api/tasks/{TASK}/datasheet", headers=h1)).json()
            sheet2 = (await client.get(f"/api/tasks/{TASK}/datasheet", headers=h2)).json()
            assert sheet1["modbus"]["port"] == int(env1["IIOTLAB_MODBUS_PORT"])
            assert sheet2["modbus"]["port"] == int(env2["IIOTLAB_MODBUS_PORT"])
            # nothing of s2's (credentials, ports, datasheet) reaches s1's token
            seen_by_s1 = json.dumps([me1, sheet1])
            s2_mqtt = me2["tasks"][0]["endpoints"]["mqtt"]
            assert s2_mqtt["password"] not in seen_by_s1
            assert f":{s2_mqtt['port']}" not in seen_by_s1
            assert f'"port": {sheet2["modbus"]["port"]}' not in seen_by_s1

            # s2 gets 50 % extra time from the proctor
            proctor = exam.proctor_headers()
            response = await client.post(
                "/api/proctor/candidates/s2/extra-time", json={"percent": 50}, headers=proctor
            )
            assert response.status_code == 200
            left = {c["student"]: c["time_left_s"] for c in response.json()["candidates"]}
            assert left["s2"] > left["s1"] + 800  # 30 min: 50 % is 900 s more

            # s1 develops against the live plant for longer than the lab runs (net-01: 6 s)
            developing = await start_reference_gateway(client, h1, TASK, tmp_path / "s1")
            gateways.append(developing)  # stopped at the end whatever happens
            await asyncio.sleep(8)
            a1 = (await client.post(f"/api/tasks/{TASK}/attempts", headers=h1)).json()
            a2 = (await client.post(f"/api/tasks/{TASK}/attempts", headers=h2)).json()
            assert a1["phase"] in ("queued", "waiting_gateway"), a1
            # as in practice mode, each (re)starts the gateway when the portal says so
            await wait_phase(client, h1, a1["id"])
            developing.terminate()
            await developing.wait()
            gateways.append(await run_gateway(tmp_path / "s1"))
            await wait_phase(client, h2, a2["id"])
            gateways.append(await start_reference_gateway(client, h2, TASK, tmp_path / "s2"))
            # a candidate cannot read another's attempt
            assert (await client.get(f"/api/attempts/{a2['id']}", headers=h1)).status_code == 404
            r1, r2 = (
                await wait_graded(client, h1, a1["id"]),
                await wait_graded(client, h2, a2["id"]),
            )
            assert r1["state"] == "graded", r1
            assert r1["result"]["score"] == r1["result"]["max_score"] == 100, r1
            assert r2["state"] == "graded" and r2["result"]["score"] == 100, r2
            assert {c["id"] for c in r1["result"]["checks"]} == {"values", "contract"}

            snapshot = (await client.get("/api/proctor/candidates", headers=proctor)).json()
            assert {c["student"]: c["score"] for c in snapshot["candidates"]} == {
                "s1": 100,
                "s2": 100,
            }
            closing = (await client.post("/api/proctor/end", headers=proctor)).json()
            assert closing["certificates"] == ["s1", "s2"]
            # a token stops working at the end
            assert (await client.get("/api/me", headers=h1)).status_code == 401
    finally:
        await stop_all(gateways, exam)

    with (exam.out / "gradebook.csv").open(newline="", encoding="utf-8") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert rows["s1"][TASK] == "100" and rows["s2"]["passed"] == "yes"
    key = ["--public-key", str(exam.key_file)]
    certificate = exam.out / "certificates" / "s1.html"
    check = run(["verify", str(certificate), *key], exam.env)
    assert check.returncode == 0 and "valid: exam test-exam s1 100" in check.stdout, check
    forged = certificate.read_text(encoding="utf-8").replace('"score": 100', '"score": 99')
    certificate.write_text(forged, encoding="utf-8")
    assert run(["verify", str(certificate), *key], exam.env).returncode == 1
    log = exam.out / "audit.jsonl"
    assert run(["exam", "verify-log", str(log), *key], exam.env).returncode == 0
    kinds = [line.split('"kind": "')[1].split('"')[0] for line in log.read_text().splitlines()]
    assert kinds.count("login") == 2 and kinds.count("result") == 2
    assert "extra_time" in kinds and kinds[-1] == "exam_closed"
    lines = log.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if '"kind": "login"' in line)
    lines[index] = lines[index].replace('"actor": "s', '"actor": "x', 1)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(["exam", "verify-log", str(log), *key], exam.env).returncode == 1


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*iiotlab_command(), *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_wrong_codes_are_refused_then_rate_limited(tmp_path: Path) -> None:
    exam = await start_exam(tmp_path, ["s1"])
    try:
        async with httpx.AsyncClient(base_url=exam.base, timeout=30) as client:
            statuses = [
                (await client.post("/api/login", json={"code": f"WRONG{i}"})).status_code
                for i in range(7)
            ]
            assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
            # rate limited: even the right code waits
            right = await client.post("/api/login", json={"code": exam.codes()["s1"]})
            assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
            assert (await client.get("/api/me")).status_code == 401
            bogus = {"Authorization": "Bearer not-a-token"}
            assert (
                await client.get(f"/api/tasks/{TASK}/datasheet", headers=bogus)
            ).status_code == 401
            assert (await client.get("/api/proctor/candidates", headers=bogus)).status_code == 401
    finally:
        await exam.stop()


def test_serve_refuses_without_bubblewrap(tmp_path: Path) -> None:
    exam = tmp_path / "exam.yaml"
    from tests.exam.helpers import EXAM, LAB

    exam.write_text(EXAM.format(feedback="score", minutes=10, lab=LAB), encoding="utf-8")
    (tmp_path / "roster.csv").write_text("student\ns1\n", encoding="utf-8")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "iiotlab.cli", "exam", "serve", str(exam), "--roster",
         str(tmp_path / "roster.csv"), "--out", str(tmp_path / "out"), "--port", "0"],
        env={"PATH": str(empty), "IIOTLAB_DATA_DIR": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "bubblewrap" in done.stderr and "apt-get install bubblewrap" in done.stderr
    assert not (tmp_path / "out" / "codes.csv").exists()


async def test_no_gateway_is_not_gradable_and_costs_no_attempt(tmp_path: Path) -> None:
    exam = await start_exam(tmp_path, ["s1"], feedback="none")
    try:
        async with httpx.AsyncClient(base_url=exam.base, timeout=30) as client:
            h1 = await login(client, exam.codes()["s1"])
            attempt = (await client.post(f"/api/tasks/{TASK}/attempts", headers=h1)).json()
            # one attempt of a task at a time
            again = await client.post(f"/api/tasks/{TASK}/attempts", headers=h1)
            assert again.status_code == 409 and "being graded" in again.json()["detail"]
            view = await wait_graded(client, h1, attempt["id"])
            assert view["state"] == "not_gradable"
            assert "did not connect" in view["result"]["reason"]
            me = (await client.get("/api/me", headers=h1)).json()
            assert me["tasks"][0]["attempts_used"] == 0 and me["score"] is None
            proctor = exam.proctor_headers()
            assert (await client.post("/api/proctor/pause", headers=proctor)).status_code == 200
            paused = await client.post(f"/api/tasks/{TASK}/attempts", headers=h1)
            assert paused.status_code == 409 and "paused" in paused.json()["detail"]
            # a lost session: the proctor issues a new code, the old token stops working
            new = await client.post("/api/proctor/candidates/s1/code", headers=proctor)
            assert (await client.get("/api/me", headers=h1)).status_code == 401
            h1 = await login(client, new.json()["code"])
            me = (await client.get("/api/me", headers=h1)).json()
            await asyncio.sleep(1.2)
            assert (await client.get("/api/me", headers=h1)).json()["time_left_s"] == me[
                "time_left_s"
            ]
    finally:
        await exam.stop()
