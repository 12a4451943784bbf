"""sec-01 mutant: OPC UA without security (policy None), with the datasheet's user.

The mistake: the student logs in with the user and password of the datasheet and thinks
that is enough; the session is neither signed nor encrypted, so the password crosses the
network in clear.

Otherwise the solution: the reference gateway reading over OPC UA.

MQTT credentials and TLS come from the grader's variables (IIOTLAB_MQTT_URL with the user
of broker.yaml, IIOTLAB_MQTT_CA); the OPC UA user comes from the datasheet.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig, OpcuaSourceConfig
from edge_gateway.config_builders import config_from_datasheet
from iiotlab.datasheet import load_datasheet


def lab_config() -> GatewayConfig:
    env = os.environ
    sheet = load_datasheet(env["IIOTLAB_DATASHEET"])
    state = Path(env.get("IIOTLAB_STATE_DIR") or ".")
    ca = env.get("IIOTLAB_MQTT_CA")
    config = config_from_datasheet(
        sheet,
        broker_url=env["IIOTLAB_MQTT_URL"],
        tenant=env.get("IIOTLAB_TENANT"),
        device=env.get("IIOTLAB_DEVICE"),
        modbus_host=env.get("IIOTLAB_MODBUS_HOST"),
        modbus_port=int(env["IIOTLAB_MODBUS_PORT"]) if env.get("IIOTLAB_MODBUS_PORT") else None,
        opcua_url=env["IIOTLAB_OPCUA_URL"],
        prefer="opcua",
        buffer_path=state / "gateway-buffer.db",
        ca_file=Path(ca) if ca else None,
    )
    user = sheet.opcua.users[0]
    sources = {
        name: source.model_copy(
            update={
                "security_policy": "None",  # the mistake: no signing, no encryption
                "security_mode": "None",
                "username": user["username"],
                "password": user["password"],
                "certificate_dir": state / "opcua-client",
            }
        )
        if isinstance(source, OpcuaSourceConfig)
        else source
        for name, source in config.sources.items()
    }
    return config.model_copy(update={"sources": sources, "heartbeat_s": 5.0})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))
