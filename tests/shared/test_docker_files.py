"""docker/ is validated by parsing (no Docker engine runs on the build machines)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from iiotlab.cli import build_app

pytestmark = pytest.mark.unit

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_has_the_designed_services() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert set(compose["services"]) >= {"mosquitto", "influxdb", "simulators", "platform"}
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
    build = compose["services"]["platform"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()


def test_compose_commands_are_real_cli_commands() -> None:
    """Every iiotlab command the compose file runs parses with the real CLI."""
    from typer.main import get_command

    cli = get_command(build_app())
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    for name in ("simulators", "platform"):
        args = compose["services"][name]["command"]
        ctx = cli.make_context("iiotlab", list(args), resilient_parsing=False)
        sub_name, sub, rest = cli.resolve_command(ctx, list(args))  # type: ignore[attr-defined]
        assert sub is not None, f"{name}: {shlex.join(args)}"
        while hasattr(sub, "resolve_command") and rest and not rest[0].startswith("-"):
            sub_ctx = sub.make_context(sub_name, list(rest), parent=ctx)
            sub_name, sub, rest = sub.resolve_command(sub_ctx, list(rest))
        sub.make_context(sub_name, list(rest), parent=ctx)  # raises on an unknown option


def test_mosquitto_config_keeps_qos1_under_load() -> None:
    lines = (DOCKER / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in lines if line and not line.startswith("#"))
    assert int(settings["max_queued_messages"]) >= 100000
    assert settings["max_inflight_messages"] == "0"
