"""edge-01 mutant: the solution without store-and-forward.

The mistake: while the broker is unreachable the student's gateway numbers each report
but throws it away instead of keeping it on disk, so the outage leaves a gap.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import Deadband, GatewayConfig
from edge_gateway.config_builders import config_from_env
from edge_gateway.publisher import TelemetryPublisher
from edge_gateway.reporting import Report

keep = TelemetryPublisher.submit


def submit_only_when_connected(self: TelemetryPublisher, report: Report) -> int:
    if not self.client.connected:  # the mistake: dropped, not buffered
        return self.buffer.next_seq()
    return keep(self, report)


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
    TelemetryPublisher.submit = submit_only_when_connected  # type: ignore[method-assign]
    asyncio.run(serve(lab_config()))
