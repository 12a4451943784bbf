"""A multi-plant lab as an exam task: the candidate downloads gateway.env, the line
manifest and every device's datasheet into one folder, runs the lab's own reference
solution there against the relays of the exam, and gets full marks."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.exam.helpers import login, parse_env, start_exam, wait_graded, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
ROOT = Path(__file__).resolve().parents[2]
TASK = "net-04-identifier-resolution"


async def download_line(
    client: httpx.AsyncClient, headers: dict[str, str], task: dict[str, object], folder: Path
) -> dict[str, object]:
    """What the portal's download buttons fetch, into `folder`: the line's manifest."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's tmp folder)
    files = {"gateway.env": str(task["gateway_env_url"]), "line.json": str(task["line_url"])}
    urls = task["line_datasheet_urls"]
    assert isinstance(urls, dict)
    files |= {f"{device}.json": str(url) for device, url in urls.items()}
    for name, url in files.items():
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        (folder / name).write_bytes(response.content)
    manifest: dict[str, object] = json.loads((folder / "line.json").read_text(encoding="utf-8"))
    return manifest


async def test_a_line_lab_graded_through_the_exam_relays(tmp_path: Path) -> None:
    exam = await start_exam(tmp_path, ["s1"], lab=TASK)
    provision: asyncio.subprocess.Process | None = None
    try:
        async with httpx.AsyncClient(base_url=exam.base, timeout=30) as client:
            headers = await login(client, exam.codes()["s1"])
            (task,) = (await client.get("/api/me", headers=headers)).json()["tasks"]
            assert task["env"]["IIOTLAB_LINE"] == "line.json"
            folder = tmp_path / "workstation"
            manifest = await download_line(client, headers, task, folder)
            devices = manifest["devices"]
            assert isinstance(devices, list)
            assert [d["device"] for d in devices] == list(task["line_datasheet_urls"])
            assert len(devices) == 5 and {d["datasheet"] for d in devices} == {
                f"{d['device']}.json" for d in devices
            }
            # each device behind its own relay on the exam's host, named in its datasheet
            ports = set()
            for entry in devices:
                sheet = json.loads((folder / entry["datasheet"]).read_text(encoding="utf-8"))
                assert sheet["device"] == entry["device"]
                if entry["modbus"]:
                    assert sheet["modbus"]["port"] == entry["modbus"]["port"]
                    ports.add(entry["modbus"]["port"])
                else:
                    assert sheet["opcua"]["endpoint"] == entry["opcua_url"]
                    ports.add(int(entry["opcua_url"].rsplit(":", 1)[1].split("/")[0]))
            assert len(ports) == 5
            unknown = await client.get(f"/api/tasks/{TASK}/line/nope.json", headers=headers)
            assert unknown.status_code == 404 and "tank-1" in unknown.json()["detail"]

            attempt = (await client.post(f"/api/tasks/{TASK}/attempts", headers=headers)).json()
            await wait_phase(client, headers, attempt["id"])
            # the lab's reference solution, run as the candidate runs it on a workstation
            shutil.copy(ROOT / "labs" / TASK / "solution" / "provision.py", folder)
            env_text = (folder / "gateway.env").read_text(encoding="utf-8")
            provision = await asyncio.create_subprocess_exec(
                sys.executable, "provision.py", cwd=folder,
                env={"PATH": os.environ["PATH"], "HOME": str(folder), **parse_env(env_text)},
                stdout=(folder / "provision.log").open("wb"), stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            assert await asyncio.wait_for(provision.wait(), 120) == 0, (
                folder / "provision.log"
            ).read_text(encoding="utf-8")
            view = await wait_graded(client, headers, attempt["id"], 180)
            assert view["state"] == "graded", view
            result = view["result"]
            assert result["score"] == result["max_score"] == 100, result
    finally:
        if provision is not None and provision.returncode is None:
            provision.kill()
            await provision.wait()
        await exam.stop()
