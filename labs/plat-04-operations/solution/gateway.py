"""Solution of plat-04: the reference gateway, configured for stale-data monitoring.

The config comes from the gateway-under-test variables (the datasheet decides the
registers). A frozen-value rule in the platform only sees the values that arrive, and
report by exception sends a value only when it changes: a stalled sensor would simply go
quiet until the next heartbeat (30 s by default). A 0.5 s heartbeat re-sends every value
every 0.5 s, so 3 s of one value is about six messages that agree. Polling every 0.5 s makes
a recovered value show within half a second. The Last Will and the retained `online` are
the reference gateway's own.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig, ModbusSourceConfig
from edge_gateway.config_builders import config_from_env

POLL_S = 0.5
HEARTBEAT_S = 0.5  # every value at least every 0.5 s, changed or not


def lab_config() -> GatewayConfig:
    config = config_from_env()
    sources = {
        name: source.model_copy(update={"poll_interval_s": POLL_S})
        if isinstance(source, ModbusSourceConfig)
        else source
        for name, source in config.sources.items()
    }
    return config.model_copy(update={"sources": sources, "heartbeat_s": HEARTBEAT_S})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
