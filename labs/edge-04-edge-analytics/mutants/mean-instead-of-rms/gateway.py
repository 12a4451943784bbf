"""Solution of edge-04: the reference gateway with two sliding-window transforms.

The config comes from the gateway-under-test variables (the datasheet decides the
registers). For this lab every tag is polled every 0.2 s, and two transforms run after
each poll over the samples of the last window (ts within window_s of the newest):
`vibration_rms_5s` = sqrt(mean of squares) of the vibration over 5 s and
`discharge_pressure_avg_10s` = mean of the discharge pressure over 10 s.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig, ModbusSourceConfig, TransformConfig
from edge_gateway.config_builders import config_from_env

POLL_S = 0.2
TRANSFORMS = [
    TransformConfig(
        name="vibration_rms_5s", tag="vibration_rms", kind="moving_average", window_s=5.0
    ),
    TransformConfig(
        name="discharge_pressure_avg_10s",
        tag="discharge_pressure",
        kind="moving_average",
        window_s=10.0,
    ),
]


def lab_config() -> GatewayConfig:
    config = config_from_env()
    sources = {
        name: source.model_copy(update={"poll_interval_s": POLL_S})
        if isinstance(source, ModbusSourceConfig)
        else source
        for name, source in config.sources.items()
    }
    return config.model_copy(
        update={"sources": sources, "transforms": TRANSFORMS, "heartbeat_s": 5.0}
    )


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
