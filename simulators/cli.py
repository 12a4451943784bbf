"""Commands of this part (registered into `iiotlab`): `datasheet` and `sim`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

Format = Literal["json", "md", "html"]


def _datasheet_text(plant: str, lab: str, student: str, fmt: str) -> str:
    from iiotlab.errors import ConfigError
    from iiotlab.settings import Settings
    from simulators.datasheet_render import render_html, render_markdown
    from simulators.variants import build_datasheet

    datasheet = build_datasheet(plant, lab, student, Settings.from_env().course_secret)
    if fmt == "json":
        return datasheet.model_dump_json(indent=2, exclude_none=True) + "\n"
    if fmt == "md":
        return render_markdown(datasheet)
    if fmt == "html":
        return render_html(datasheet)
    raise ConfigError(
        "unknown datasheet format", key="--format", value=fmt, expected="json, md or html"
    )


def datasheet_command(
    plant: str = typer.Option(..., "--plant", help="tank, boiler, packaging, compressor, energy"),
    lab: str = typer.Option("sandbox", "--lab", help="Lab id."),
    student: str = typer.Option("demo", "--student", help="Student id."),
    fmt: str = typer.Option("json", "--format", help="json, md or html."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file, not stdout."),
) -> None:
    """Print a student's plant datasheet (register map, unit id, OPC UA nodes)."""
    text = _datasheet_text(plant, lab, student, fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


def sim_command(
    plant: str = typer.Option("tank", "--plant", help="A plant kind, or 'all'."),
    lab: str = typer.Option("sandbox", "--lab", help="Lab id."),
    student: str = typer.Option("demo", "--student", help="Student id."),
    modbus_port: int = typer.Option(5020, "--modbus-port", help="0 picks a free port."),
    opcua_port: int = typer.Option(4840, "--opcua-port", help="0 picks a free port."),
    scenario: Path | None = typer.Option(None, "--scenario", help="Scenario YAML file."),
    truth_log: Path | None = typer.Option(None, "--truth-log", help="Ground truth JSONL."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    no_opcua: bool = typer.Option(False, "--no-opcua", help="Serve Modbus only."),
    tick_hz: float = typer.Option(10.0, "--tick-hz", help="Process tick rate."),
) -> None:
    """Run simulated plants over Modbus TCP and OPC UA until Ctrl-C / SIGTERM."""
    import asyncio

    from simulators.sim_runner import run_until_signal

    asyncio.run(
        run_until_signal(
            plant,
            lab,
            student,
            host=host,
            modbus_port=modbus_port,
            opcua_port=opcua_port,
            scenario=scenario,
            truth_log=truth_log,
            enable_opcua=not no_opcua,
            tick_hz=tick_hz,
        )
    )


def register(app: typer.Typer) -> None:
    """Add this part's commands to the iiotlab CLI."""
    app.command("datasheet")(datasheet_command)
    app.command("sim")(sim_command)
