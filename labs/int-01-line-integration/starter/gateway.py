"""Starter of int-01: a gateway for the line's first device only.

`config_from_env()` reads the single-device variables (IIOTLAB_DEVICE, IIOTLAB_DATASHEET,
IIOTLAB_MODBUS_HOST/PORT): in this lab they point at tank-1, the first device of the line.

TODO 1: serve every device of IIOTLAB_LINE (the line manifest, docs/contract.md): one
        configuration per device (edge_gateway.line.line_configs_from_env builds them),
        OPC UA devices read over OPC UA, all run together (edge_gateway.line.serve_line).
TODO 2: a machine that stands still must still report: set a heartbeat short enough that
        every device has messages before and after an outage.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config_builders import config_from_env

if __name__ == "__main__":
    asyncio.run(serve(config_from_env()))
