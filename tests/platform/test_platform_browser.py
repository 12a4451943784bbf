"""A real `iiotlab up` in a subprocess, driven through its web UI in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path("/tmp/iiotlab-platform-ui.png")


@pytest.fixture
def lab_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`iiotlab up --json` on free ports with the reference gateway of the tank plant."""
    command = [
        sys.executable,
        "-m",
        "iiotlab.cli",
        "up",
        "--plant",
        "tank",
        "--with-gateway",
        "--port",
        "0",
        "--mqtt-port",
        "0",
        "--modbus-port",
        "0",
        "--opcua-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--json",
    ]
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"iiotlab up printed nothing: {(tmp_path / 'up.log').read_text()[-2000:]}"
        info: dict[str, Any] = json.loads(line)
        yield info
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, (tmp_path / "up.log").read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_ui_shows_device_live_chart_and_acknowledges_alarm(lab_stack: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert lab_stack["devices"] == [
        {"plant": "tank", "device": "tank-1", "unit_id": lab_stack["devices"][0]["unit_id"]}
    ]
    assert lab_stack["gateways"] == 1 and lab_stack["auth"] is False
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(lab_stack["ui"])
            row = page.locator('#devices tr[data-device="tank-1"]')
            expect(row).to_have_attribute("data-online", "true", timeout=20_000)

            chart = page.locator('.chart[data-metric="level"]')
            expect(chart).to_be_visible(timeout=10_000)
            page.wait_for_load_state("networkidle")  # the lists and the first series
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            first = int(chart.get_attribute("data-last-ts") or 0)
            for _ in range(3):  # three new messages reach the chart...
                page.wait_for_function(
                    "([ts]) => Number(document.querySelector('.chart[data-metric=\"level\"]')"
                    ".dataset.lastTs) > ts",
                    arg=[first],
                    timeout=10_000,
                )
                first = int(chart.get_attribute("data-last-ts") or 0)
            # ...pushed over the event stream: the page asked the API for nothing meanwhile
            assert [url for url in requests if "/api/" in url] == []
            assert page.locator(".chart canvas").count() >= 1
            expect(page.locator("#status")).to_contain_text("live since")

            rule = {"name": "level demo", "kind": "threshold", "metric": "level", "high": -1e9}
            created = httpx.post(lab_stack["platform"] + "/api/rules", json=rule, timeout=10)
            assert created.status_code == 201
            button = page.locator("button[data-alarm-id]").first
            expect(button).to_be_visible(timeout=10_000)
            alarm_id = button.get_attribute("data-alarm-id")
            button.click()
            expect(page.locator(f'tr[data-alarm="{alarm_id}"]')).to_have_attribute(
                "data-state", "acknowledged", timeout=10_000
            )
            page.locator("#lang").click()
            expect(page.locator("h1")).to_have_text("iiotlab 工业互联网平台")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    alarm = httpx.get(f"{lab_stack['platform']}/api/alarms/{alarm_id}", timeout=10).json()
    assert alarm["state"] == "acknowledged"
