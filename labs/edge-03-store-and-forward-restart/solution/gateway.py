"""Solution of edge-03: the reference gateway, its buffer on disk in IIOTLAB_STATE_DIR.

config_from_env puts the store-and-forward buffer (an SQLite outbox that also keeps the
last seq) in IIOTLAB_STATE_DIR, which survives the kill: after the restart the gateway
marks what it finds there as replayed, sends it with its original ts, and numbers new
readings from the stored seq on. Polling every 0.5 s and a 5 s heartbeat.
"""

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
