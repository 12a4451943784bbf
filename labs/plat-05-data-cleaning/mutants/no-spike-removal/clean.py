"""Data cleaning (solution of plat-05): export, deduplicate, despike, resample, shift KPIs.

Every second: export the run's active_power readings from the platform (REST API, student
token), then
1. drop duplicates and replays: one reading per timestamp (the first);
2. remove spikes: a reading more than SPIKE_KW from the median of the readings within
   WINDOW_MS of it (before and after, itself included) is a sensor glitch;
3. resample to 1 s: each second's value is the mean of its readings, or the previous
   second's value when it has none;
4. per 10 s shift (aligned on the epoch): readings (distinct timestamps, step 1), the mean
   and the largest of its 1 s values;
and write power_1s.csv and shifts.csv to IIOTLAB_OUTPUT_DIR (each replaced whole).
"""

from __future__ import annotations

import bisect
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

METRIC = "active_power"
SPIKE_KW = 30.0
WINDOW_MS = 2000
SECOND_MS = 1000
SHIFT_MS = 10_000
SETTLE_MS = 1500  # a shift is written once it closed this long ago


def export(client: httpx.Client, tenant: str, device: str) -> list[tuple[int, float]]:
    now = int(time.time() * 1000)
    answer = client.get(
        f"/api/devices/{tenant}/{device}/series",
        params={"metric": METRIC, "start": now - 600_000, "end": now + 1},
    )
    answer.raise_for_status()
    return [(int(ts), float(value)) for ts, value in answer.json()["points"]]


def deduplicate(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    seen: dict[int, float] = {}
    for ts, value in points:
        seen.setdefault(ts, value)
    return sorted(seen.items())


def despike(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    times = [ts for ts, _ in points]
    kept = []
    for ts, value in points:
        low = bisect.bisect_left(times, ts - WINDOW_MS)
        high = bisect.bisect_right(times, ts + WINDOW_MS)
        if abs(value - statistics.median(v for _, v in points[low:high])) <= SPIKE_KW:
            kept.append((ts, value))
    return kept


def resample(points: list[tuple[int, float]], until_ms: int) -> list[tuple[int, float]]:
    if not points:
        return []
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        buckets.setdefault(ts // SECOND_MS * SECOND_MS, []).append(value)
    series, previous = [], None
    for second in range(min(buckets), until_ms, SECOND_MS):
        values = buckets.get(second)
        previous = sum(values) / len(values) if values else previous
        series.append((second, previous))
    return [(ts, value) for ts, value in series if value is not None]


def shifts(
    readings: list[int], series: list[tuple[int, float]], until_ms: int
) -> list[list[float]]:
    rows = []
    values = dict(series)
    first = min(values, default=until_ms) // SHIFT_MS * SHIFT_MS + SHIFT_MS
    for start in range(first, until_ms - SHIFT_MS + 1, SHIFT_MS):
        seconds = [values[t] for t in range(start, start + SHIFT_MS, SECOND_MS) if t in values]
        if len(seconds) < SHIFT_MS // SECOND_MS:
            continue
        count = sum(1 for ts in readings if start <= ts < start + SHIFT_MS)
        rows.append([start, count, round(sum(seconds) / len(seconds), 3), round(max(seconds), 3)])
    return rows


def write_csv(folder: Path, name: str, header: list[str], rows: list[list[float]]) -> None:
    partial = folder / f".{name}.tmp"
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(partial, folder / name)  # a reader never sees half a file


def main() -> None:
    env = os.environ
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    output = Path(env["IIOTLAB_OUTPUT_DIR"])
    headers = {"Authorization": f"Bearer {env['IIOTLAB_PLATFORM_TOKEN']}"}
    with httpx.Client(base_url=env["IIOTLAB_PLATFORM_URL"], headers=headers, timeout=10) as client:
        while True:
            time.sleep(1.0)
            try:
                raw = export(client, tenant, device)
            except httpx.HTTPError as error:  # the device appears with its first message
                print(f"export: {error}", file=sys.stderr, flush=True)
                continue
            closed = (int(time.time() * 1000) - SETTLE_MS) // SECOND_MS * SECOND_MS
            unique = deduplicate(raw)
            series = resample(unique, closed)  # MUTANT: spikes left in
            readings = [ts for ts, _ in unique]
            write_csv(
                output, "power_1s.csv", ["ts_ms", METRIC], [[t, round(v, 3)] for t, v in series]
            )
            header = ["shift_start_ms", "readings", f"mean_{METRIC}", f"max_{METRIC}"]
            write_csv(output, "shifts.csv", header, shifts(readings, series, closed))


if __name__ == "__main__":
    main()
