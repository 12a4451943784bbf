"""Solution of int-01: provision the platform for the whole line, then exit.

With the student token (IIOTLAB_PLATFORM_URL, IIOTLAB_PLATFORM_TOKEN) and the line manifest
(IIOTLAB_LINE):
1. registers every device with its datasheet;
2. registers the enterprise prefix 88.100.1 and an identifier per device;
3. adds a threshold rule on tank-1's level: above 90 % of its datasheet range.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

PREFIX = "88.100.1"
IDENTIFIERS = {
    "tank-1": "LT-101",
    "boiler-1": "BLR-01",
    "packaging-1": "PKG-01",
    "compressor-1": "CMP-01",
    "energy-1": "EM-01",
}


def call(client: httpx.Client, method: str, path: str, body: Any, ok: tuple[int, ...]) -> None:
    response = client.request(method, path, json=body)
    if response.status_code not in ok:
        sys.exit(f"{method} {path}: HTTP {response.status_code} {response.text}")
    print(f"{method} {path}: HTTP {response.status_code}", flush=True)


def load(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def wait_for_platform(client: httpx.Client) -> None:
    for _ in range(50):  # the platform may still be starting
        try:
            client.get("/api/health").raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)


def main() -> None:
    env = os.environ
    tenant = env["IIOTLAB_TENANT"]
    devices = load(env["IIOTLAB_LINE"])["devices"]
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        wait_for_platform(client)
        call(client, "POST", "/api/prefixes", {"prefix": PREFIX}, (201, 409))
        for entry in devices:
            device, sheet = entry["device"], load(entry["datasheet"])
            description = f"{entry['plant']} {IDENTIFIERS.get(device, device)}"
            body = {"description": description, "datasheet": sheet}
            call(client, "PUT", f"/api/devices/{tenant}/{device}", body, (200,))
            suffix = IDENTIFIERS.get(device, device.upper())
            identifier = {"identifier": f"{PREFIX}/{suffix}", "device": device, "metadata": {}}
            call(client, "POST", "/api/identifiers", identifier, (201, 409))
            if entry["plant"] == "tank":
                level = next(tag for tag in sheet["tags"] if tag["name"] == "level")
                low, high = level["range"]
                rule = {
                    "name": f"{device}-level-high",
                    "kind": "threshold",
                    "device": device,
                    "metric": "level",
                    "high": round(low + 0.9 * (high - low), 3),
                    "hysteresis": 0.2,
                    "severity": "critical",
                }
                call(client, "POST", "/api/rules", rule, (201, 409))


if __name__ == "__main__":
    main()
