"""int-02 gateway process: the reference gateway for a share of the line's devices.

`python gateway.py tank-01,tank-03,...` serves those devices of IIOTLAB_LINE, each with its
own datasheet, sized by deployment.yaml: the poll interval of each PLC's Modbus source, the
on-disk buffer's capacity, the heartbeat and the deadbands (report by exception). Each PLC
is read over one connection, in block reads of its contiguous registers.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from edge_gateway.config import Deadband, GatewayConfig
from edge_gateway.line import line_configs_from_env, serve_line


def sized(config: GatewayConfig, deployment: dict[str, Any]) -> GatewayConfig:
    sources = {
        name: source.model_copy(update={"poll_interval_s": float(deployment["poll_interval_s"])})
        for name, source in config.sources.items()
    }
    buffer = config.buffer.model_copy(update={"capacity": int(deployment["buffer_capacity"])})
    deadbands = deployment.get("deadband") or {}
    tags = [
        tag.model_copy(update={"deadband": Deadband(absolute=float(deadbands[tag.name]))})
        if tag.name in deadbands
        else tag
        for tag in config.tags
    ]
    return config.model_copy(
        update={
            "sources": sources,
            "tags": tags,
            "buffer": buffer,
            "heartbeat_s": float(deployment["heartbeat_s"]),
        }
    )


def main() -> None:
    deployment = yaml.safe_load(Path("deployment.yaml").read_text(encoding="utf-8"))
    mine = set(sys.argv[1].split(","))
    configs = [sized(c, deployment) for c in line_configs_from_env() if c.device in mine]
    asyncio.run(serve_line(configs))


if __name__ == "__main__":
    main()
