"""Solution of int-01: the reference gateway serving every device of the line.

IIOTLAB_LINE names each device, its endpoint (Modbus through the grader's proxy, or an
OPC UA URL) and its datasheet; `line_configs_from_env` builds one gateway configuration
per device (Modbus devices read their registers, OPC UA devices their nodes, each with its
own on-disk buffer in IIOTLAB_STATE_DIR) and `serve_line` runs them in one process, all on
the TLS broker with the CA in IIOTLAB_MQTT_CA.

A 2 s heartbeat: a machine that stands still (the packaging line between orders) must
still report, or nobody can tell it from a dead link, and an outage leaves no trace.
"""

from __future__ import annotations

import asyncio

from edge_gateway.config import GatewayConfig
from edge_gateway.line import line_configs_from_env, serve_line

HEARTBEAT_S = 2.0


def lab_configs() -> list[GatewayConfig]:
    return [
        config.model_copy(update={"heartbeat_s": HEARTBEAT_S}) for config in line_configs_from_env()
    ]


if __name__ == "__main__":
    asyncio.run(serve_line(lab_configs()))
