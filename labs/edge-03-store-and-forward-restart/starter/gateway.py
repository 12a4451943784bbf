"""Starter for edge-03 (see the TODO): the reference gateway, its buffer on disk in IIOTLAB_STATE_DIR.

config_from_env puts the store-and-forward buffer (an SQLite outbox that also keeps the
last seq) in IIOTLAB_STATE_DIR, which survives the kill: after the restart the gateway
marks what it finds there as replayed, sends it with its original ts, and numbers new
readings from the stored seq on. Polling every 0.5 s and a 5 s heartbeat.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

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
    # TODO: the buffer must survive a restart. This starter starts a fresh buffer file at
    #       every start (buffer and last seq gone); keep it in IIOTLAB_STATE_DIR
    #       (config_from_env already puts config.buffer.path there) and do not delete it.
    fresh = Path("gateway-buffer.db")
    fresh.unlink(missing_ok=True)
    buffer = config.buffer.model_copy(update={"path": fresh})
    return config.model_copy(update={"sources": sources, "heartbeat_s": 5.0, "buffer": buffer})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
