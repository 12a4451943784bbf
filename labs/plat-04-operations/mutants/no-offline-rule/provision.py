"""Solution of plat-04: provision the boiler's operations monitoring, then exit.

Reads the gateway-under-test variables plus IIOTLAB_PLATFORM_URL and IIOTLAB_PLATFORM_TOKEN
(docs/grader.md) and, with the student token:
1. registers the boiler with its datasheet;
2. adds two rules (docs/platform.md, Rules and alarms):
   - `offline` for the device: the gateway's Last Will raises it, its `online` clears it;
   - `frozen` on temperature: TT-201 always moves (noise, and heating while the burner
     fires), so 3 s of exactly the same value means the sensor has stalled.
     Not on pressure: below 100 °C it sits at atmospheric, a constant that is no fault.

gateway.cmd runs this again when the grader restarts the gateway: existing rules (by name)
are kept, never duplicated.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

FROZEN_S = 3.0  # the gateway re-sends every value at least every 0.5 s (gateway.py)


def call(client: httpx.Client, method: str, path: str, body: Any, ok: tuple[int, ...]) -> Any:
    response = client.request(method, path, json=body)
    if response.status_code not in ok:
        sys.exit(f"{method} {path}: HTTP {response.status_code} {response.text}")
    print(f"{method} {path}: HTTP {response.status_code}", flush=True)
    return response.json() if response.content else None


def wait_for_platform(client: httpx.Client) -> None:
    for _ in range(50):  # the platform may still be starting
        try:
            client.get("/api/health").raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)


def rules_for(device: str) -> list[dict[str, Any]]:
    return [
        # MUTANT: no offline rule (a dead gateway raises nothing)
        {
            "name": "tt201-frozen",
            "kind": "frozen",
            "device": device,
            "metric": "temperature",
            "frozen_s": FROZEN_S,
            "severity": "warning",
        },
    ]


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    with open(env["IIOTLAB_DATASHEET"], encoding="utf-8") as handle:
        sheet = json.load(handle)
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        wait_for_platform(client)
        body = {"description": "Steam boiler B-201", "datasheet": sheet}
        call(client, "PUT", f"/api/devices/{tenant}/{device}", body, (200,))
        existing = {rule["name"] for rule in call(client, "GET", "/api/rules", None, (200,))}
        for rule in rules_for(device):
            if rule["name"] not in existing:
                call(client, "POST", "/api/rules", rule, (201,))


if __name__ == "__main__":
    main()
