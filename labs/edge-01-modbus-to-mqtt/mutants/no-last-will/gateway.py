"""edge-01 mutant: the solution without a Last Will.

The mistake: the student connects to the broker and publishes a retained 'online', but
never sets the Last Will, so when the gateway dies nobody is told it is offline.
"""

from __future__ import annotations

import asyncio

import edge_gateway.gateway
from edge_gateway.cli import serve
from edge_gateway.config import BrokerConfig, Deadband, GatewayConfig
from edge_gateway.config_builders import config_from_env
from edge_gateway.publisher import broker_url
from iiotlab.mqtt import MqttClient

HEARTBEAT_S = 5.0
DEADBANDS = {"level": 0.02, "inflow": 1.0, "outflow": 1.0}  # engineering units


def client_without_will(config: BrokerConfig, *, tenant: str, device: str) -> MqttClient:
    return MqttClient(
        broker_url(config),
        client_id=config.client_id or f"iiotlab-gw-{tenant}-{device}",
        ca_file=config.ca_file,
        keepalive=config.keepalive_s,
        max_inflight=0,
    )  # the mistake: no will=(status topic, 'offline', qos 1, retained)


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
    edge_gateway.gateway.make_client = client_without_will  # type: ignore[assignment]
    asyncio.run(serve(lab_config()))
