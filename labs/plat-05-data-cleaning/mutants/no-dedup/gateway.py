"""The meter's gateway: the reference gateway polling the energy meter every 0.5 s."""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig, ModbusSourceConfig
from edge_gateway.config_builders import config_from_env

POLL_S = 0.5


def lab_config() -> GatewayConfig:
    config = config_from_env()
    sources = {
        name: source.model_copy(update={"poll_interval_s": POLL_S})
        if isinstance(source, ModbusSourceConfig)
        else source
        for name, source in config.sources.items()
    }
    return config.model_copy(update={"sources": sources, "heartbeat_s": 5.0})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
