"""int-02 launcher: start the gateway processes deployment.yaml asks for.

The line's devices (IIOTLAB_LINE) are shared out round-robin over `gateways` processes,
each running gateway.py for its share. The launcher waits for them and passes SIGTERM on,
so the grader's stop reaches every gateway (each publishes `offline` on its way out).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import yaml


def shares(devices: list[str], gateways: int) -> list[list[str]]:
    groups: list[list[str]] = [[] for _ in range(max(1, min(gateways, len(devices))))]
    for index, device in enumerate(devices):
        groups[index % len(groups)].append(device)
    return groups


def main() -> None:
    deployment = yaml.safe_load(Path("deployment.yaml").read_text(encoding="utf-8"))
    line = json.loads(Path(os.environ["IIOTLAB_LINE"]).read_text(encoding="utf-8"))
    devices = [entry["device"] for entry in line["devices"]]
    children = [
        subprocess.Popen([sys.executable, "gateway.py", ",".join(group)])
        for group in shares(devices, int(deployment["gateways"]))
    ]

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.exit(max(child.wait() for child in children))


if __name__ == "__main__":
    main()
