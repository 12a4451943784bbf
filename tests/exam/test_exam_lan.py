"""An exam on a LAN address: everything a candidate's workstation needs is on --host.

The other exam tests use 127.0.0.1; a training base runs `--host` on the exam room's
network. Here the exam binds this machine's own non-loopback address: every endpoint the
portal, the datasheet and gateway.env name is on it (and on nothing else), and the
lab's own solution, started from the downloaded files, gets full marks through it over
OPC UA."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import httpx
import pytest
from asyncua import Client

from tests.exam.helpers import login, parse_env, start_exam, stop_all, wait_graded, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
TASK = "net-02-opcua-data-access"
ROOT = Path(__file__).resolve().parents[2]


def lan_address() -> str | None:
    """This machine's IPv4 address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


async def test_an_exam_on_a_lan_address(tmp_path: Path) -> None:
    host = lan_address()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    exam = await start_exam(tmp_path, ["s1"], lab=TASK, host=host)
    gateways: list[asyncio.subprocess.Process] = []
    try:
        assert exam.base.startswith(f"http://{host}:")
        async with httpx.AsyncClient(base_url=exam.base, timeout=30) as client:
            headers = await login(client, exam.codes()["s1"])
            me = (await client.get("/api/me", headers=headers)).json()
            (task,) = me["tasks"]
            sheet = (await client.get(f"/api/tasks/{TASK}/datasheet", headers=headers)).json()
            env_text = (await client.get(f"/api/tasks/{TASK}/gateway.env", headers=headers)).text
            handed_out = json.dumps([me, sheet]) + env_text
            leaks = [m.start() for m in re.finditer(r"127\.0\.0\.1|localhost", handed_out)]
            assert not leaks, [handed_out[max(0, i - 120) : i + 40] for i in leaks]
            endpoints = task["endpoints"]
            env = parse_env(env_text)
            ports = {endpoints["mqtt"]["port"], int(env["IIOTLAB_OPCUA_URL"].split(":")[2][:5])}
            if "modbus" in endpoints:
                ports.add(endpoints["modbus"]["port"])
            assert env["IIOTLAB_OPCUA_URL"].startswith(f"opc.tcp://{host}:")
            assert sheet["opcua"]["endpoint"] == env["IIOTLAB_OPCUA_URL"]
            for port in ports:  # bound on --host, and on nothing else
                assert reachable(host, port), port
                assert not reachable("127.0.0.1", port), port
            # OPC UA discovery through the relay names the relay, not the simulator's
            # loopback endpoint (a client such as UaExpert connects to what it is told)
            discovered = await Client(env["IIOTLAB_OPCUA_URL"]).connect_and_get_server_endpoints()
            assert discovered and {e.EndpointUrl for e in discovered} == {env["IIOTLAB_OPCUA_URL"]}

            attempt = (await client.post(f"/api/tasks/{TASK}/attempts", headers=headers)).json()
            await wait_phase(client, headers, attempt["id"])
            # the lab's own solution, from the files the portal hands out
            folder = tmp_path / "workstation"
            folder.mkdir()
            (folder / "gateway.env").write_text(env_text, encoding="utf-8")
            (folder / "datasheet.json").write_text(json.dumps(sheet), encoding="utf-8")
            shutil.copy(ROOT / "labs" / TASK / "solution" / "gateway.py", folder)
            gateway = await asyncio.create_subprocess_exec(
                sys.executable, "gateway.py", cwd=folder,
                env={"PATH": os.environ["PATH"], "HOME": str(folder), **env},
                stdout=(folder / "gateway.log").open("wb"), stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            gateways.append(gateway)
            view = await wait_graded(client, headers, attempt["id"], 180)
            assert view["state"] == "graded", view
            result = view["result"]
            assert result["score"] == result["max_score"], (
                result,
                (folder / "gateway.log").read_text(encoding="utf-8")[-3000:],
            )
    finally:
        await stop_all(gateways, exam)
