"""Pieces of the run, alone: the fault proxy, the gateway process, not-gradable results,
submissions and rosters."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import grader.runner
from grader.checks.registry import default_registry
from grader.classmode import read_roster
from grader.environment import NotGradableError, StudentRun
from grader.faults.proxy import TcpFaultProxy
from grader.runner import GatewaySpec, grade
from grader.sandbox import RunLimits
from grader.signing import verify, write_new_key
from grader.spec import prepare_lab
from grader.submission import NoSubmissionError, gateway_command, load_broker_policy
from iiotlab.errors import ConfigError
from tests.grader.grading_helpers import gateway_process

ROOT = Path(__file__).resolve().parents[2]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.integration
async def test_proxy_relays_cuts_and_restores() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with TcpFaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(4), 2) == b"ping"
        proxy.cut()
        assert await asyncio.wait_for(reader.read(4), 2) == b""  # dropped
        reader2, _ = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader2.read(4), 2) == b""  # refused while down
        proxy.restore()
        reader3, writer3 = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer3.write(b"pong")
        assert await asyncio.wait_for(reader3.read(4), 2) == b"pong"
        writer3.close()
    server.close()
    await server.wait_closed()


@pytest.mark.integration
async def test_gateway_process_kill_restart_and_memory_limit(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    process = gateway_process(
        tmp_path, "echo started $IIOTLAB_TENANT; sleep 30", {"IIOTLAB_TENANT": "alice"}
    )

    async def started(times: int) -> None:  # the shell has run its echo
        async with asyncio.timeout(10):
            while not log.exists() or log.read_text().count("started alice") < times:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    await process.start()
    await started(1)
    await process.kill()
    await process.start()
    await started(2)
    await process.stop()
    await process.stop()  # safe twice
    assert [e.killed_by_grader for e in process.exits] == [True, True]
    assert log.read_text().count("started alice") == 2
    hog = gateway_process(
        tmp_path,
        f'{sys.executable} -c "b = bytearray(400 * 1024 * 1024)"',
        limits=RunLimits(memory_mb=200),
    )
    await hog.start()
    async with asyncio.timeout(60):  # it ends on its own (MemoryError), however slow to start
        while hog.running:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await hog.stop()
    assert hog.exits[0].returncode != 0 and not hog.exits[0].killed_by_grader
    assert "MemoryError" in log.read_text()


@pytest.mark.unit
async def test_grader_failure_is_not_gradable_never_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise NotGradableError("the mosquitto broker did not start: mosquitto not installed")

    monkeypatch.setattr(grader.runner, "observe", broken)
    key = write_new_key(tmp_path / "key.pem")
    plan = prepare_lab(ROOT / "labs" / "net-01-modbus-datasheet", default_registry())
    result = await grade(
        StudentRun(plan, "alice", "secret", tmp_path / "out"), GatewaySpec("true", tmp_path), key
    )
    assert not result.gradable and "mosquitto" in (result.reason or "")
    assert result.checks == [] and result.max_score == 100
    import json

    verify(json.loads((tmp_path / "out" / "result.json").read_text()), key.private.public_key())
    assert "Not gradable" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.unit
def test_submission_and_roster_errors(tmp_path: Path) -> None:
    with pytest.raises(NoSubmissionError, match=r"gateway\.cmd file"):
        gateway_command(tmp_path)
    (tmp_path / "gateway.cmd").write_text("# my gateway\ncd src\npython gw.py\n")
    assert gateway_command(tmp_path) == "cd src && python gw.py"
    (tmp_path / "broker.yaml").write_text("allow_anonymous: false\nusers: [{username: u}]\n")
    with pytest.raises(ConfigError, match=r"users\.0\.password"):
        load_broker_policy(tmp_path / "broker.yaml")
    roster = tmp_path / "roster.csv"
    roster.write_text("name\nx\n")
    with pytest.raises(ConfigError, match="'student' column"):
        read_roster(roster)
    roster.write_text("student\nalice\nalice\n")
    with pytest.raises(ConfigError, match="twice"):
        read_roster(roster)
