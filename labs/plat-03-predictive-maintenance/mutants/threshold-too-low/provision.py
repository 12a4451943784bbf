"""Solution of plat-03: provision the platform over its REST API, then exit.

Reads the gateway-under-test variables plus IIOTLAB_PLATFORM_URL and IIOTLAB_PLATFORM_TOKEN
(docs/grader.md) and, with the student token:
1. registers the compressor with its datasheet;
2. adds the bearing alarm: a threshold rule on `vibration_min`, the lowest vibration RMS
   of each 1.5 s window that the gateway computes (gateway.py). Impact spikes and noise
   lift single samples, never a whole window, so the rule fires only once the vibration's
   underlying level has reached the wear limit's 7.1 mm/s.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

DERIVED_METRIC = "vibration_min"  # the name gateway.py gives its transform
LIMIT_MM_S = 2.8  # MUTANT: an ISO 10816 zone B/C "alert" level instead of the wear limit


def call(client: httpx.Client, method: str, path: str, body: Any, ok: tuple[int, ...]) -> None:
    response = client.request(method, path, json=body)
    if response.status_code not in ok:
        sys.exit(f"{method} {path}: HTTP {response.status_code} {response.text}")
    print(f"{method} {path}: HTTP {response.status_code}", flush=True)


def wait_for_platform(client: httpx.Client) -> None:
    for _ in range(50):  # the platform may still be starting
        try:
            client.get("/api/health").raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    with open(env["IIOTLAB_DATASHEET"], encoding="utf-8") as handle:
        sheet = json.load(handle)
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        wait_for_platform(client)
        body = {"description": "Air compressor, drive-end bearing watch", "datasheet": sheet}
        call(client, "PUT", f"/api/devices/{tenant}/{device}", body, (200,))
        rule = {
            "name": "bearing-wear-limit",
            "kind": "threshold",
            "device": device,
            "metric": DERIVED_METRIC,
            "high": LIMIT_MM_S,
            "hysteresis": 0.5,
            "severity": "critical",
        }
        call(client, "POST", "/api/rules", rule, (201, 409))


if __name__ == "__main__":
    main()
