"""Starter for net-02: it finds your boiler's variables by browsing and polls them.

It runs as is, but it polls: replace the loop at the end by a subscription, and publish
the units and ranges. Run by the grader with the variables of docs/grader.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from asyncua import Client

from iiotlab.datasheet import Datasheet, load_datasheet
from iiotlab.mqtt import MqttClient


async def browse(client: Client, sheet: Datasheet) -> dict[str, Any]:
    """Find the plant object and its variables by browse name (tag name -> node)."""
    index = await client.get_namespace_index(sheet.opcua.namespace_uri)
    object_name = (sheet.opcua.model_extra or {})["object_browse_name"]
    plant = await client.nodes.objects.get_child(f"{index}:{object_name}")
    by_browse_name = {}
    for child in await plant.get_children():
        by_browse_name[(await child.read_browse_name()).Name] = child
    return {
        tag.name: by_browse_name[tag.opcua.browse_name]
        for tag in sheet.tags
        if tag.opcua is not None and tag.opcua.browse_name in by_browse_name
    }


async def main() -> None:
    env = os.environ
    sheet = load_datasheet(env["IIOTLAB_DATASHEET"])
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    mqtt = MqttClient(env["IIOTLAB_MQTT_URL"], client_id=f"{tenant}-{device}")
    await mqtt.connect()
    async with Client(env["IIOTLAB_OPCUA_URL"]) as client:
        nodes = await browse(client, sheet)
        # TODO: read each variable's EngineeringUnits and EURange properties and publish
        #       them retained on iiot/<tenant>/<device>/meta (see README, task 3)
        # TODO: replace this polling loop by a subscription: one monitored item per node,
        #       an absolute DataChangeFilter deadband on the analog tags (README, task 2)
        seq = 0
        while True:
            metrics = {name: await node.read_value() for name, node in nodes.items()}
            seq += 1
            payload = {"v": 1, "device": device, "seq": seq, "ts": int(time.time() * 1000),
                       "metrics": metrics}
            await mqtt.publish(f"iiot/{tenant}/{device}/telemetry", json.dumps(payload).encode())
            await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
