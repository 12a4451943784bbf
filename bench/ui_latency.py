"""Message-to-chart latency of the platform UI in Chromium, beside a bare MQTT subscriber.

A publisher sends telemetry of one device (QoS 1, 10 messages/s), each stamped with the
time it is published. The platform (real uvicorn, SQLite) stores it and pushes it over
server-sent events to the UI in headless Chromium. A MutationObserver in the page waits
for the chart's newest point to change, then for the next animation frame (the chart is
drawn), and notes the time. Latency = that time - the message's stamp (one clock: one
machine). The baseline is the floor: a bare MQTT subscriber on the same broker receiving
the same messages.

Run: python bench/ui_latency.py [--messages N] [--rate R] [--broker mosquitto|embedded]
Needs Debian chromium and the playwright package (pip install playwright). Bounded: the
run stops after N/R + 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from iiot_platform.settings import PlatformSettings
from iiot_platform.stack import PlatformServer
from iiotlab.mqtt import BrokerConfig, MqttClient, make_broker
from iiotlab.mqtt.mosquitto import find_mosquitto

TENANT, DEVICE, METRIC = "bench", "ui-1", "x"
WARMUP = 5  # messages before measuring: the device and its chart must exist
OBSERVE = """
() => {
  window.__latency = [];
  const chart = document.querySelector('.chart[data-metric="x"]');
  new MutationObserver(() => {
    const ts = Number(chart.dataset.lastTs);
    requestAnimationFrame(() => window.__latency.push([ts, Date.now()]));
  }).observe(chart, { attributes: true, attributeFilter: ["data-last-ts"] });
}
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def publish(url: str, count: int, rate: float, first_seq: int) -> list[int]:
    client = MqttClient(url, client_id="bench-ui-publisher")
    await client.connect()
    stamps = []
    try:
        for i in range(count):
            ts = int(time.time() * 1000)
            body = {"v": 1, "device": DEVICE, "seq": first_seq + i, "ts": ts}
            body["metrics"] = {METRIC: float(i % 50)}
            await client.publish(f"iiot/{TENANT}/{DEVICE}/telemetry", json.dumps(body).encode())
            stamps.append(ts)
            await asyncio.sleep(1 / rate)
    finally:
        await client.disconnect()
    return stamps


async def bare_latencies(url: str, stop: asyncio.Event) -> list[float]:
    client = MqttClient(url, client_id="bench-ui-bare")
    await client.connect()
    await client.subscribe(f"iiot/{TENANT}/#")
    latencies: list[float] = []

    async def receive() -> None:
        async for message in client.messages():
            ts = json.loads(message.payload)["ts"]
            latencies.append(time.time() * 1000 - ts)

    task = asyncio.create_task(receive())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.disconnect()
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    kind = args.broker if args.broker == "embedded" or find_mosquitto() else "embedded"
    async with make_broker(kind, BrokerConfig()) as broker:
        with tempfile.TemporaryDirectory() as folder:
            settings = PlatformSettings(broker_url=broker.url, data_dir=Path(folder))
            platform = PlatformServer(settings, "127.0.0.1", 0)
            await platform.start()
            try:
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=shutil.which("chromium"),
                        args=["--no-sandbox", "--disable-gpu"],
                    )
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{platform.port}/")
                    await publish(broker.url, WARMUP, args.rate, 0)
                    chart = page.locator(f'.chart[data-metric="{METRIC}"]')
                    await chart.wait_for(timeout=15_000)
                    await page.wait_for_load_state("networkidle")
                    await page.evaluate(OBSERVE)
                    stop = asyncio.Event()
                    bare = asyncio.create_task(bare_latencies(broker.url, stop))
                    await asyncio.sleep(0.5)
                    stamps = await publish(broker.url, args.messages, args.rate, WARMUP)
                    await asyncio.sleep(1.0)
                    stop.set()
                    seen = await page.evaluate("window.__latency")
                    await browser.close()
                bare_ms = await bare
            finally:
                await platform.stop()
    sent = set(stamps)
    ui_ms = [float(now - ts) for ts, now in seen if ts in sent]
    return {"kind": kind, "sent": len(stamps), "ui": ui_ms, "bare": bare_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        raise SystemExit("needs Debian chromium (apt-get install chromium)")
    limit = args.messages / args.rate + 30
    outcome = asyncio.run(asyncio.wait_for(run(args), limit))
    ui, bare = outcome["ui"], outcome["bare"]
    if not ui or not bare:
        raise SystemExit(f"nothing measured: {len(ui)} chart updates, {len(bare)} received")
    figures = {
        "ui_p50_ms": round(statistics.median(ui), 1),
        "ui_p95_ms": round(percentile(ui, 0.95), 1),
        "ui_updates": len(ui),
    }
    baselines = {
        "mqtt_subscriber_p50_ms": round(statistics.median(bare), 1),
        "mqtt_subscriber_p95_ms": round(percentile(bare, 0.95), 1),
    }
    print(
        f"broker {outcome['kind']}; {outcome['sent']} messages at {args.rate:g}/s;"
        f" {len(ui)} reached the chart"
    )
    print(
        f"  message -> chart drawn (Chromium): p50 {figures['ui_p50_ms']} ms,"
        f" p95 {figures['ui_p95_ms']} ms"
    )
    print(
        f"  message -> bare MQTT subscriber (floor): p50 {baselines['mqtt_subscriber_p50_ms']}"
        f" ms, p95 {baselines['mqtt_subscriber_p95_ms']} ms"
    )
    print(json.dumps({"bench": "ui_latency", "figures": figures, "baselines": baselines}))


if __name__ == "__main__":
    main()
