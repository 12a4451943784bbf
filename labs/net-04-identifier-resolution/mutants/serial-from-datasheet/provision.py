"""Solution of net-04: identifiers for every device of the line (标识解析).

As the secondary node 88.100.7, allocate the enterprise prefix 88.100.7.1 under it; then,
for every device of the line (IIOTLAB_LINE), read its serial number from the device itself
(Modbus string registers or its OPC UA variable), register the identifier
88.100.7.1/<product code>-<serial number> bound to the device with the device's identity as
metadata, and resolve it to check.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from asyncua import Client, ua

from iiotlab.datasheet import Datasheet, load_datasheet
from iiotlab.registers import RegisterFormat, decode

SECONDARY_PREFIX = "88.100.7"
ENTERPRISE_PREFIX = "88.100.7.1"
MBAP = struct.Struct(">HHHB")


async def modbus_serial(host: str, port: int, sheet: Datasheet) -> str:
    """The serial number's string registers (function 3 or 4), decoded."""
    tag = sheet.tag("serial_number").modbus
    assert tag is not None and tag.length is not None
    function = 3 if tag.table == "holding" else 4
    reader, writer = await asyncio.open_connection(host, port)
    try:
        pdu = struct.pack(">BHH", function, tag.address, tag.length)
        writer.write(MBAP.pack(1, 0, len(pdu) + 1, sheet.modbus.unit_id) + pdu)
        await writer.drain()
        _, _, length, _ = MBAP.unpack(await reader.readexactly(MBAP.size))
        answer = await reader.readexactly(length - 1)
    finally:
        writer.close()
    if answer[0] & 0x80:
        raise OSError(f"Modbus exception {answer[1]} reading the serial number")
    words = list(struct.unpack(f">{tag.length}H", answer[2 : 2 + 2 * tag.length]))
    return str(decode(words, RegisterFormat("string", length=tag.length))).rstrip("\x00 ")


async def opcua_serial(url: str, sheet: Datasheet) -> str:
    """The serial number variable, found in the device's namespace."""
    tag = sheet.tag("serial_number").opcua
    assert tag is not None
    async with Client(url) as client:
        index = await client.get_namespace_index(sheet.opcua.namespace_uri)
        identifier = ua.NodeId.from_string(tag.node_id).Identifier
        return str(await client.get_node(ua.NodeId(identifier, index)).read_value())


async def device_record(entry: dict[str, Any]) -> dict[str, Any]:
    sheet = load_datasheet(entry["datasheet"])
    identity = sheet.identity
    assert identity is not None
    # MISTAKE: the device is never asked; the model name stands in for its serial number
    serial = identity.model_name or "unknown"
    metadata = {
        "vendor_name": identity.vendor_name,
        "product_code": identity.product_code,
        "revision": identity.revision,
        "serial_number": serial,
        "plant": entry["plant"],
    }
    return {
        "identifier": f"{ENTERPRISE_PREFIX}/{identity.product_code}-{serial}",
        "device": entry["device"],
        "metadata": metadata,
    }


async def main() -> None:
    env = os.environ
    line = json.loads(await asyncio.to_thread(Path(env["IIOTLAB_LINE"]).read_text, "utf-8"))
    records = [await device_record(entry) for entry in line["devices"]]
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    async with httpx.AsyncClient(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers) as api:
        for prefix, description in (
            (SECONDARY_PREFIX, "secondary node"),
            (ENTERPRISE_PREFIX, "enterprise, allocated by the secondary node"),
        ):
            answer = await api.post(
                "/api/prefixes", json={"prefix": prefix, "description": description}
            )
            if answer.status_code not in (201, 409):  # 409: registered already (a restart)
                answer.raise_for_status()
        for record in records:
            (await api.post("/api/identifiers", json=record)).raise_for_status()
            resolved = await api.get(f"/api/resolve/{quote(record['identifier'], safe='/')}")
            resolved.raise_for_status()
            print(record["identifier"], "->", resolved.json()["device"], flush=True)


if __name__ == "__main__":
    asyncio.run(main())
