"""`iiotlab gateway` as a process: --from-env, SIGUSR1 counters, SIGTERM -> offline; init."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from gateway_helpers import Listener

from edge_gateway import load_gateway_config
from iiotlab.mqtt import EmbeddedBroker
from simulators.simulation import Simulation, SimulationConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COMMAND = [sys.executable, "-c", "from iiotlab.cli import main; main()"]


async def test_run_from_env_until_sigterm(tmp_path: Path) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="hana", enable_opcua=False)
    async with (
        EmbeddedBroker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        sheet_path = tmp_path / "ds.json"
        sheet_path.write_text(sim.datasheets["tank"].model_dump_json())
        env = dict(
            os.environ,
            IIOTLAB_MODBUS_HOST="127.0.0.1",
            IIOTLAB_MODBUS_PORT=str(sim.modbus_port),
            IIOTLAB_MQTT_URL=broker.url,
            IIOTLAB_TENANT="hana",
            IIOTLAB_DEVICE="tank-1",
            IIOTLAB_DATASHEET=str(sheet_path),
            IIOTLAB_STATE_DIR=str(tmp_path / "state"),
        )
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "gateway",
            "run",
            "--from-env",
            "--heartbeat",
            "2",
            "--deadband",
            "level=1%",
            env=env,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await ears.wait_for(lambda: bool(ears.payloads("telemetry", "tank-1")), 30, "telemetry")
            process.send_signal(signal.SIGUSR1)
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert "counters: read=" in stderr.decode()
        await ears.wait_for(
            lambda: ears.payloads("status", "tank-1")[-1]["state"] == "offline", 5, "offline"
        )
        assert (tmp_path / "state" / "gateway-buffer.db").exists()
        first = ears.payloads("telemetry", "tank-1")[0]
        assert first["seq"] == 0 and first["metrics"]


async def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    sim_config = SimulationConfig(plants=("boiler",), student="ivan", enable_opcua=False)
    async with Simulation(sim_config) as sim:
        sheet_path = tmp_path / "ds.json"
        sheet_path.write_text(sim.datasheets["boiler"].model_dump_json())
    out = tmp_path / "gw.yaml"
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "gateway",
        "init",
        "--datasheet",
        str(sheet_path),
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert "wrote" in stdout.decode()
    config = load_gateway_config(out)
    assert config.device == "boiler-1" and config.tenant == "ivan"
    assert config.sources["plc"].port == sim.modbus_port  # type: ignore[union-attr]


async def test_bad_config_prints_the_place_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "gw.yaml"
    bad.write_text("device: tank-1\nsources: {}\ntags: []\nbrokr: {}\n")
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "gateway",
        "--config",
        str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 2
    text = stderr.decode()
    assert f"{bad}:4: unknown key; key 'brokr'" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--deadband", "nosuch=1", "no tag 'nosuch' in this config"),
        ("--deadband", "level", "TAG=VALUE or TAG=VALUE%"),
        ("--deadband", "level=150%", "a percent deadband is at most 100"),
        ("--heartbeat", "0", "not a positive number of seconds"),
    ],
)
async def test_bad_override_names_the_option(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    async with Simulation(SimulationConfig(plants=("tank",), enable_opcua=False)) as sim:
        sheet_path = tmp_path / "ds.json"
        sheet_path.write_text(sim.datasheets["tank"].model_dump_json())
    env = dict(os.environ, IIOTLAB_DATASHEET=str(sheet_path), IIOTLAB_STATE_DIR=str(tmp_path))
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "gateway",
        "run",
        "--from-env",
        flag,
        value,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert flag in text and says in text and "Traceback" not in text
