"""`iiotlab sim`: build the configuration, serve until SIGINT/SIGTERM, print endpoints."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import typer

from iiotlab.errors import ConfigError
from iiotlab.settings import Settings
from simulators.scenario import load_scenario
from simulators.simulation import Simulation, SimulationConfig, endpoints
from simulators.variants import PLANTS


def plants_of(plant: str) -> tuple[str, ...]:
    if plant == "all":
        return PLANTS
    names = tuple(p.strip() for p in plant.split(","))
    for name in names:
        if name not in PLANTS:
            raise ConfigError(
                "unknown plant",
                key="--plant",
                value=name,
                expected=f"one of {', '.join(PLANTS)} or 'all'",
            )
    return names


async def run_until_signal(
    plant: str,
    lab: str,
    student: str,
    *,
    host: str,
    modbus_port: int,
    opcua_port: int,
    scenario: Path | None,
    truth_log: Path | None,
    enable_opcua: bool,
    tick_hz: float,
) -> None:
    settings = Settings.from_env()
    config = SimulationConfig(
        plants=plants_of(plant),
        lab=lab,
        student=student,
        course_secret=settings.course_secret,
        host=host,
        modbus_port=modbus_port,
        opcua_port=opcua_port,
        enable_opcua=enable_opcua,
        tick_hz=tick_hz,
        scenario=load_scenario(scenario) if scenario else None,
        truth_log=truth_log,
        cert_dir=settings.data_dir / "opcua-server",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Simulation(config) as sim:
        info = endpoints(sim)
        typer.echo(f"modbus: {info['modbus'] or 'disabled'}")
        typer.echo(f"opcua: {info['opcua'] or 'disabled'}")
        for device, unit in dict(info["units"]).items():  # type: ignore[call-overload]
            typer.echo(f"unit {unit}: {device}")
        typer.echo("ready " + json.dumps(info), err=True)
        await stop.wait()
    typer.echo("stopped")
