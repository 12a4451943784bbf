"""OEE APP (starter of plat-02): availability per window works; the rest is yours (TODO).

Reads the packaging line's series from the platform (REST API, student token), computes the
four figures for every 10 s window aligned on the epoch once it has closed, and writes them
back as metrics of the derived device `oee-1` (POST .../telemetry, ts = window start).

The model (README): planned time = the window; run time = time in state 1 (running);
availability = run / planned; performance = ideal_cycle_time x total / run;
quality = good / total; OEE = availability x performance x quality. Counts are the
differences of the counters between the window's edges; a value at an instant is the last
sample at or before it.
"""

from __future__ import annotations

import bisect
import os
import sys
import time
from typing import Any

import httpx

WINDOW_MS = 10_000
SETTLE_S = 2.0  # after a window closes, its last samples are on their way to the platform
LATE_MS = 8_000  # and once one sample after it is stored, they all are; at the latest, this
DERIVED = "oee-1"
SERIES = ("state", "good_count", "reject_count", "ideal_cycle_time")


class Series:
    """Points (ts, value) of one metric, sorted; value_at = last sample at or before."""

    def __init__(self, points: list[list[Any]]) -> None:
        self.points = sorted((int(ts), value) for ts, value in points)
        self.times = [ts for ts, _ in self.points]

    def value_at(self, ts: int) -> Any:
        index = bisect.bisect_right(self.times, ts) - 1
        return self.points[index][1] if index >= 0 else None

    def run_ms(self, start: int, end: int) -> int:
        """Time in [start, end) with state 1, the state holding until the next sample."""
        total, state, since = 0, self.value_at(start), start
        for ts, value in self.points:
            if ts <= start:
                continue
            if ts >= end:
                break
            if state == 1:
                total += ts - since
            state, since = value, ts
        return total + (end - since if state == 1 else 0)


def figures(data: dict[str, Series], start: int) -> dict[str, float] | None:
    end = start + WINDOW_MS
    if data["state"].value_at(start) is None:
        return None  # no data from before the window: not computable
    run_ms = data["state"].run_ms(start, end)
    availability = run_ms / WINDOW_MS
    # TODO performance: ideal_cycle_time x packs made (good + rejects) / run time (s).
    #      Packs made = the counters' differences between the window's edges
    #      (data["good_count"].value_at(end) - data["good_count"].value_at(start), ...).
    # TODO quality: good packs / all packs made (1 when nothing was made).
    # TODO oee: availability x performance x quality, all four written below.
    return {"availability": round(availability, 4)}


def fetch(client: httpx.Client, tenant: str, device: str, end: int) -> dict[str, Series]:
    data = {}
    for metric in SERIES:
        answer = client.get(
            f"/api/devices/{tenant}/{device}/series",
            params={"metric": metric, "start": end - 600_000, "end": end},
        )
        answer.raise_for_status()
        data[metric] = Series(answer.json()["points"])
    return data


def stored_until(client: httpx.Client, tenant: str, device: str) -> int:
    """The ts of the newest sample the platform holds for the device. A gateway's messages
    arrive in order, so every sample before it is stored too (on a busy machine, a window's
    last samples can reach the platform seconds after the window closed)."""
    answer = client.get(f"/api/devices/{tenant}/{device}/latest")
    answer.raise_for_status()
    return max((int(item["ts"]) for item in answer.json().values()), default=0)


def write(client: httpx.Client, tenant: str, start: int, result: dict[str, float]) -> None:
    message = {"v": 1, "device": DERIVED, "seq": start // WINDOW_MS, "ts": start, "metrics": result}
    answer = client.post(f"/api/devices/{tenant}/{DERIVED}/telemetry", json=message)
    print(f"window {start}: {result} -> HTTP {answer.status_code}", flush=True)


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    pending: int | None = None  # start of the next window to write
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        while True:
            now = int(time.time() * 1000)
            closed = (now - int(SETTLE_S * 1000)) // WINDOW_MS * WINDOW_MS  # end of the last
            pending = closed - WINDOW_MS if pending is None else pending
            while pending + WINDOW_MS <= closed:  # every closed window, even after a stall
                try:
                    end = pending + WINDOW_MS
                    if now < end + LATE_MS and stored_until(client, tenant, device) < end:
                        break  # its last samples may still be on their way: wait for them
                    data = fetch(client, tenant, device, pending + WINDOW_MS + 1)
                    result = figures(data, pending)
                    if result is not None:
                        write(client, tenant, pending, result)
                except httpx.HTTPError as error:  # the device may not exist yet: retry
                    print(f"window {pending}: {error}", file=sys.stderr, flush=True)
                    time.sleep(0.5)
                    break
                pending += WINDOW_MS
            time.sleep(0.2)

if __name__ == "__main__":
    main()
