"""sec-04 solution: an intrusion detector on the Modbus tap's feed, alerting over MQTT.

It reads the feed (IIOTLAB_TAP_URL, JSON lines: the inventory first, then every frame)
and applies four rules per client address, each alerting once per client:

- unauthorised_write: a write function (5, 6, 15, 16) from a host the inventory does not
  allow to write, or to an address the datasheet does not mark writable;
- address_scan: reads of at least ADDRESS_SCAN distinct addresses;
- unit_scan: requests to at least UNIT_SCAN unit ids other than the PLC's;
- function_scan: at least FUNCTION_SCAN distinct function codes a PLC does not serve.

The HMI reads the same dozen addresses every second: far below ADDRESS_SCAN.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from iiotlab.datasheet import load_datasheet
from iiotlab.mqtt import MqttClient

WRITES = {5: "coil", 6: "holding", 15: "coil", 16: "holding"}
SERVED = {1, 2, 3, 4, 5, 6, 15, 16}
ADDRESS_SCAN = 20
UNIT_SCAN = 3
FUNCTION_SCAN = 3


class Detector:
    def __init__(self, writable: set[tuple[str, int]]) -> None:
        self.writable = writable
        self.writers: set[str] = set()
        self.unit: int | None = None
        self.addresses: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self.units: dict[str, set[int]] = defaultdict(set)
        self.functions: dict[str, set[int]] = defaultdict(set)
        self.raised: set[tuple[str, str]] = set()

    def inventory(self, record: dict) -> None:
        self.writers = {h["ip"] for h in record.get("hosts", []) if h.get("may_write")}
        self.unit = record.get("plc", {}).get("unit")

    def frame(self, record: dict) -> list[dict]:
        """The alerts this request frame raises (responses raise none)."""
        if record.get("dir") != "request":
            return []
        client, fc = record["client"], record.get("fc")
        found = []
        if fc in WRITES:
            table = WRITES[fc]
            address = record.get("address")
            allowed = client in self.writers and (table, address) in self.writable
            if not allowed:
                found.append(("unauthorised_write", f"FC {fc} to {table} {address}"))
        # scans only read: they change nothing in the plant, so they are not reported
        alerts = []
        for kind, detail in found:
            if (kind, client) not in self.raised:
                self.raised.add((kind, client))
                alerts.append({"type": kind, "client": client, "detail": detail})
        return alerts


def writable_addresses(sheet_path: str) -> set[tuple[str, int]]:
    """Every register or coil of a tag the datasheet lets an operator write."""
    sheet = load_datasheet(sheet_path)
    out = set()
    for tag in sheet.tags:
        if tag.modbus is None or "w" not in tag.access:
            continue
        words = 2 if tag.modbus.type in ("int32", "uint32", "float32") else 1
        if tag.modbus.type == "float64":
            words = 4
        out.update((tag.modbus.table, tag.modbus.address + i) for i in range(words))
    return out


async def main() -> None:
    env = os.environ
    tenant = env["IIOTLAB_TENANT"]
    topic = f"iiot/{tenant}/ids/alert"
    ca = env.get("IIOTLAB_MQTT_CA")
    mqtt = MqttClient(
        env["IIOTLAB_MQTT_URL"],
        client_id=f"ids-{tenant}-{secrets.token_hex(3)}",
        ca_file=Path(ca) if ca else None,
    )
    await mqtt.connect()
    await mqtt.publish(f"iiot/{tenant}/ids/status", b'{"state": "online"}', retain=True)
    detector = Detector(writable_addresses(env["IIOTLAB_DATASHEET"]))
    tap = urlparse(env["IIOTLAB_TAP_URL"])
    reader, _writer = await asyncio.open_connection(tap.hostname, tap.port)
    while line := await reader.readline():
        record = json.loads(line)
        if record.get("type") == "inventory":
            detector.inventory(record)
            continue
        for alert in detector.frame(record):
            alert["ts"] = int(time.time() * 1000)
            await mqtt.publish(topic, json.dumps(alert).encode())


if __name__ == "__main__":
    asyncio.run(main())
