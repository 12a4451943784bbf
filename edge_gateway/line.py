"""The reference gateway for a multi-plant lab: one Gateway per device of the line.

`line_configs_from_env()` reads IIOTLAB_LINE (docs/contract.md, *Line manifest*) and
builds one GatewayConfig per device from that device's datasheet; `serve_line()` runs
them together in one process until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from edge_gateway.config import GatewayConfig
from edge_gateway.config_builders import config_from_datasheet, config_from_env
from iiotlab.datasheet import load_datasheet
from iiotlab.errors import ConfigError
from iiotlab.gateway_env import GatewayEnvironment


class LineEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str
    port: int


class LineDeviceEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    device: str
    plant: str
    modbus: LineEndpoint | None = None
    opcua_url: str | None = None
    datasheet: Path


class LineManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    devices: list[LineDeviceEntry]


def load_line(path: Path) -> LineManifest:
    """The line manifest at `path`; errors name the file and what is wrong. A relative
    datasheet path is relative to the manifest's folder (the exam portal's files)."""
    try:
        manifest = LineManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
        devices = [
            entry.model_copy(update={"datasheet": path.parent / entry.datasheet})
            for entry in manifest.devices
        ]
        return manifest.model_copy(update={"devices": devices})
    except FileNotFoundError:
        raise ConfigError("line manifest not found", file=path, key="IIOTLAB_LINE") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"not a line manifest: {exc}", file=path) from None


def line_configs_from_env(environ: Mapping[str, str] | None = None) -> list[GatewayConfig]:
    """One config per device of IIOTLAB_LINE (or the single device when it is unset).

    Each device reads Modbus when its entry has Modbus, else OPC UA, and keeps its own
    store-and-forward buffer in the state folder.
    """
    environ = os.environ if environ is None else environ
    variables = GatewayEnvironment.from_environ(environ)
    if variables.line is None:
        return [config_from_env(environ)]
    variables.state_dir.mkdir(parents=True, exist_ok=True)
    configs = []
    for entry in load_line(variables.line).devices:
        sheet = load_datasheet(entry.datasheet)
        configs.append(
            config_from_datasheet(
                sheet,
                broker_url=variables.mqtt_url,
                tenant=variables.tenant,
                device=entry.device,
                modbus_host=entry.modbus.host if entry.modbus else None,
                modbus_port=entry.modbus.port if entry.modbus else None,
                opcua_url=entry.opcua_url,
                prefer="modbus" if entry.modbus else "opcua",
                buffer_path=variables.state_dir / f"gateway-buffer-{entry.device}.db",
                ca_file=variables.mqtt_ca,
            )
        )
    return configs


async def serve_line(configs: Sequence[GatewayConfig]) -> None:
    """Run one Gateway per config until SIGINT or SIGTERM; each publishes `offline` on exit."""
    from edge_gateway.gateway import Gateway

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for config in configs:
                await stack.enter_async_context(Gateway(config))
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
