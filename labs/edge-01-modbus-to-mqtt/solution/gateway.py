"""Solution of edge-01: the reference gateway, configured the way this lab asks.

The grader starts it with the gateway-under-test variables (docs/grader.md); the config is
built from them, then the lab's requirements are applied: a 5 s heartbeat and a deadband on
the noisy analogue tags. Everything else (Modbus decoding per datasheet, store-and-forward
on disk, seq across restarts, Last Will, commands) is the reference gateway's own.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import Deadband, GatewayConfig
from edge_gateway.config_builders import config_from_env

HEARTBEAT_S = 5.0
DEADBANDS = {"level": 0.02, "inflow": 1.0, "outflow": 1.0}  # engineering units


def lab_config() -> GatewayConfig:
    config = config_from_env()
    tags = [
        tag.model_copy(update={"deadband": Deadband(absolute=DEADBANDS[tag.name])})
        if tag.name in DEADBANDS
        else tag
        for tag in config.tags
    ]
    return config.model_copy(update={"heartbeat_s": HEARTBEAT_S, "tags": tags})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
