"""Starter for sec-01: read over OPC UA, securely. Fill in the TODOs."""

import asyncio
import os
from pathlib import Path

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig
from edge_gateway.config_builders import config_from_datasheet
from iiotlab.datasheet import load_datasheet


def lab_config() -> GatewayConfig:
    env = os.environ
    sheet = load_datasheet(env["IIOTLAB_DATASHEET"])
    ca = env.get("IIOTLAB_MQTT_CA")
    config = config_from_datasheet(
        sheet, broker_url=env["IIOTLAB_MQTT_URL"], tenant=env.get("IIOTLAB_TENANT"),
        opcua_url=env["IIOTLAB_OPCUA_URL"], prefer="opcua",
        buffer_path=Path(env.get("IIOTLAB_STATE_DIR", ".")) / "buffer.db",
        ca_file=Path(ca) if ca else None,
    )
    # TODO: set security_policy/security_mode and the datasheet's OPC UA user on the opcua source
    return config


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
