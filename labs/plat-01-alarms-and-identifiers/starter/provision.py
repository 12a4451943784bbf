"""plat-01 starter: provision the platform over its REST API, then exit.

The grader runs gateway.cmd with IIOTLAB_PLATFORM_URL and IIOTLAB_PLATFORM_TOKEN (your
student token) besides the gateway variables of docs/grader.md. Open the platform's API
reference at <IIOTLAB_PLATFORM_URL>/docs while you work (iiotlab up shows it too).
"""

from __future__ import annotations

import json
import os

import httpx


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    with open(env["IIOTLAB_DATASHEET"], encoding="utf-8") as handle:
        sheet = json.load(handle)
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        print(client.get("/api/me").json())
        # TODO 1: PUT /api/devices/{tenant}/{device} with the datasheet
        # TODO 2: POST /api/prefixes, then POST /api/identifiers (88.100.1/LT-101 -> device)
        # TODO 3: POST /api/rules: a threshold rule on 'level' (see the lab README)
        _ = (tenant, device, sheet)


if __name__ == "__main__":
    main()
