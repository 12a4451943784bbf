"""Starter for net-04: it registers the enterprise prefix and one identifier for the first
device of the line. Fill in the TODOs (README, tasks 1-4).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx

from iiotlab.datasheet import load_datasheet

SECONDARY_PREFIX = "88.100.7"
ENTERPRISE_PREFIX = "88.100.7.1"


async def device_record(entry: dict[str, Any]) -> dict[str, Any]:
    sheet = load_datasheet(entry["datasheet"])
    identity = sheet.identity
    assert identity is not None
    # TODO: read the serial number from the device itself: its `serial_number` tag over
    #       Modbus (string registers, entry["modbus"]) or OPC UA (entry["opcua_url"])
    metadata = {
        "vendor_name": identity.vendor_name,
        "product_code": identity.product_code,
        "revision": identity.revision,
    }
    return {
        "identifier": f"{ENTERPRISE_PREFIX}/{entry['device']}",
        "device": entry["device"],
        "metadata": metadata,
    }


async def main() -> None:
    env = os.environ
    line = json.loads(await asyncio.to_thread(Path(env["IIOTLAB_LINE"]).read_text, "utf-8"))
    # TODO: every device of the line, not only the first
    records = [await device_record(line["devices"][0])]
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    async with httpx.AsyncClient(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers) as api:
        # TODO: register the secondary node prefix first, so that the enterprise prefix is
        #       allocated under it
        await api.post("/api/prefixes", json={"prefix": ENTERPRISE_PREFIX})
        for record in records:
            (await api.post("/api/identifiers", json=record)).raise_for_status()


if __name__ == "__main__":
    asyncio.run(main())
