"""Solution of net-02: browse the boiler's address space, subscribe with deadbands, and
publish each tag's EngineeringUnits and EURange in a retained meta message.

Everything comes from the grader's variables and the datasheet (browse names, namespace,
tolerances differ per student); nothing is hard-coded.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from asyncua import Client, ua

from iiotlab.datasheet import Datasheet, load_datasheet
from iiotlab.mqtt import MqttClient

PUBLISHING_INTERVAL_MS = 200
HEARTBEAT_S = 5.0
DEADBAND_SHARE = 0.5  # absolute deadband = half the tolerance the datasheet allows


class Gateway:
    def __init__(self, sheet: Datasheet, mqtt: MqttClient, tenant: str, device: str) -> None:
        self.sheet, self.mqtt = sheet, mqtt
        self.topic = f"iiot/{tenant}/{device}"
        self.device = device
        self.seq = 0
        self.latest: dict[str, Any] = {}
        self.pending: dict[str, Any] = {}
        self.pending_ts = 0
        self.latest_ts = 0  # source timestamp of the newest value in latest
        self.sending: set[asyncio.Task[None]] = set()  # keep a reference until sent
        self.names: dict[str, str] = {}  # node id -> tag name

    async def browse(self, client: Client) -> dict[str, Any]:
        """Find the plant object and its variables by browse name (tag name -> node)."""
        index = await client.get_namespace_index(self.sheet.opcua.namespace_uri)
        object_name = (self.sheet.opcua.model_extra or {})["object_browse_name"]
        plant = await client.nodes.objects.get_child(f"{index}:{object_name}")
        by_browse_name = {}
        for child in await plant.get_children():
            name = await child.read_browse_name()
            by_browse_name[name.Name] = child
        nodes = {}
        for tag in self.sheet.tags:
            if tag.opcua is not None and tag.opcua.browse_name in by_browse_name:
                nodes[tag.name] = by_browse_name[tag.opcua.browse_name]
        return nodes

    async def describe(self, nodes: dict[str, Any]) -> dict[str, Any]:
        """EngineeringUnits and EURange of every analog tag, read from the server."""
        tags = {}
        for name, node in nodes.items():
            try:
                units = await (await node.get_child("0:EngineeringUnits")).read_value()
                eu_range = await (await node.get_child("0:EURange")).read_value()
            except ua.UaError:
                continue  # not an analog item (booleans, strings)
            tags[name] = {
                "unit": units.DisplayName.Text or "",
                "unit_id": units.UnitId,
                "eu_range": [eu_range.Low, eu_range.High],
            }
        return tags

    async def publish_meta(self, tags: dict[str, Any]) -> None:
        payload = {"v": 1, "device": self.device, "ts": int(time.time() * 1000), "tags": tags}
        await self.mqtt.publish(f"{self.topic}/meta", json.dumps(payload).encode(), retain=True)

    def deadband(self, name: str) -> ua.DataChangeFilter | None:
        tag = self.sheet.tag(name)
        kind = (tag.model_extra or {}).get("kind")
        if tag.range is None or tag.tolerance is None or kind != "float":
            return None
        flt = ua.DataChangeFilter()
        flt.Trigger = ua.DataChangeTrigger.StatusValue
        flt.DeadbandType = ua.DeadbandType.Absolute
        flt.DeadbandValue = tag.tolerance * DEADBAND_SHARE
        return flt

    async def subscribe(self, client: Client, nodes: dict[str, Any]) -> None:
        subscription = await client.create_subscription(PUBLISHING_INTERVAL_MS, self)
        requests = []
        for name, node in nodes.items():
            self.names[node.nodeid.to_string()] = name
            requests.append(
                subscription._make_monitored_item_request(
                    node,
                    ua.AttributeIds.Value,
                    self.deadband(name),
                    1,
                    ua.MonitoringMode.Reporting,
                    100,
                )
            )
        await subscription.create_monitored_items(requests)

    # asyncua calls this for every notification of the subscription
    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        name = self.names.get(node.nodeid.to_string())
        if name is None or not isinstance(value, bool | int | float | str):
            return
        stamp = data.monitored_item.Value.SourceTimestamp
        ts = int(stamp.timestamp() * 1000) if stamp else int(time.time() * 1000)
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending[name] = value
        self.pending_ts = max(self.pending_ts, ts)

    def flush(self) -> None:
        metrics, self.pending = self.pending, {}
        self.latest.update(metrics)
        self.latest_ts = max(self.latest_ts, self.pending_ts)
        task = asyncio.create_task(self.send(metrics, self.pending_ts))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def send(self, metrics: dict[str, Any], ts: int) -> None:
        if not metrics:
            return
        self.seq += 1
        payload = {"v": 1, "device": self.device, "seq": self.seq, "ts": ts, "metrics": metrics}
        await self.mqtt.publish(f"{self.topic}/telemetry", json.dumps(payload).encode())

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            # every value as last sampled: within its deadband of the plant since then,
            # but stamped with when the server sampled it, not with now
            await self.send(dict(self.latest), self.latest_ts or int(time.time() * 1000))


async def main() -> None:
    env = os.environ
    sheet = load_datasheet(env["IIOTLAB_DATASHEET"])
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    mqtt = MqttClient(env["IIOTLAB_MQTT_URL"], client_id=f"{tenant}-{device}")
    await mqtt.connect()
    gateway = Gateway(sheet, mqtt, tenant, device)
    async with Client(env["IIOTLAB_OPCUA_URL"]) as client:
        nodes = await gateway.browse(client)
        # MISTAKE: units and ranges copied from the datasheet, not read from the server
        tags = {
            t.name: {"unit": t.unit, "eu_range": list(t.range)}
            for t in sheet.tags
            if t.range is not None
        }
        await gateway.publish_meta(tags)
        await gateway.subscribe(client, nodes)
        await gateway.heartbeat()


if __name__ == "__main__":
    asyncio.run(main())
