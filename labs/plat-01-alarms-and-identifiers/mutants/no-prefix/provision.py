"""plat-01 mutant: the identifier registered without its enterprise prefix first.

The mistake: the student skips POST /api/prefixes and does not look at the answer to
POST /api/identifiers, so the identifier is never registered and nobody notices.

Otherwise the solution: provision the platform over its REST API, then exit.

Reads the gateway-under-test variables plus IIOTLAB_PLATFORM_URL and IIOTLAB_PLATFORM_TOKEN
(docs/grader.md) and, with the student token:
1. registers the device with the datasheet (units and descriptions appear in the UI);
2. registers the enterprise prefix 88.100.1 and the identifier 88.100.1/LT-101 bound to the
   device;
3. adds a threshold rule: level above 90 % of its datasheet range, 0.2 m hysteresis.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

PREFIX, IDENTIFIER = "88.100.1", "88.100.1/LT-101"


def call(client: httpx.Client, method: str, path: str, body: Any, ok: tuple[int, ...]) -> None:
    response = client.request(method, path, json=body)
    if response.status_code not in ok:
        sys.exit(f"{method} {path}: HTTP {response.status_code} {response.text}")
    print(f"{method} {path}: HTTP {response.status_code}", flush=True)


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    with open(env["IIOTLAB_DATASHEET"], encoding="utf-8") as handle:
        sheet = json.load(handle)
    level = next(tag for tag in sheet["tags"] if tag["name"] == "level")
    low, high = level["range"]
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        for _ in range(50):  # the platform may still be starting
            try:
                client.get("/api/health").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        call(
            client,
            "PUT",
            f"/api/devices/{tenant}/{device}",
            {"description": "Water tank LT-101", "datasheet": sheet},
            (200,),
        )
        # the mistake: no POST /api/prefixes, and the answer below is not checked
        response = client.post(
            "/api/identifiers",
            json={"identifier": IDENTIFIER, "device": device, "metadata": {"tag": "LT-101"}},
        )
        print(f"POST /api/identifiers: HTTP {response.status_code}", flush=True)
        rule = {
            "name": "level-high",
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
