"""The issue's browser test: two candidates through the exam in Chromium (log in, read the
datasheet, download gateway.env, run the reference gateway, grade, see the feedback) while
the proctor gives one of them extra time on the live dashboard, then ends the exam."""

from __future__ import annotations

import asyncio
import csv
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.exam.helpers import RunningExam, iiotlab_command, run_gateway, start_exam, stop_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium")


async def candidate_in_browser(
    browser: object,
    exam: RunningExam,
    student: str,
    folder: Path,
    gateways: list[asyncio.subprocess.Process],
) -> None:
    context = await browser.new_context(accept_downloads=True, locale="zh-CN")  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(exam.ready["portal"])
    await page.fill("#code", exam.codes()[student])
    await page.click("#login")
    task = page.locator("section.task")
    await task.wait_for()
    await task.locator("details.datasheet summary").click()
    await page.locator("details.datasheet pre").wait_for()
    assert '"modbus"' in await page.locator("details.datasheet pre").inner_text()
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's tmp folder)
    for button, name in (
        (".download-env", "gateway.env"),
        (".download-datasheet", "datasheet.json"),
    ):
        async with page.expect_download() as info:
            await page.click(button)
        await (await info.value).save_as(folder / name)
    await page.click("button.grade")
    # the portal asks for a (re)start of the gateway; grading starts at its first message
    await page.locator(".attempt .feedback", has_text="gateway.env").wait_for()
    gateways.append(await run_gateway(folder))  # stopped by the caller whatever happens
    score = page.locator(".attempt .feedback .score")
    await score.wait_for(timeout=150_000)
    assert "100 / 100" in await score.inner_text()
    assert await page.locator(".attempt li.pass").count() == 2
    await page.click("#lang")  # English
    assert "Score" in await page.locator(".attempt .feedback .score").inner_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
async def test_two_candidates_and_a_proctor_in_chromium(tmp_path: Path) -> None:
    exam = await start_exam(tmp_path, ["s1", "s2"])
    gateways: list[asyncio.subprocess.Process] = []
    try:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
            )
            proctor = await (await browser.new_context()).new_page()
            proctor.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await proctor.goto(f"{exam.ready['proctor']}#token={exam.ready['proctor_token']}")
            row = proctor.locator('tr[data-student="s2"]')
            await row.wait_for()
            await row.locator("input.extra").fill("50")
            await row.locator("button.set-extra").click()
            async with httpx.AsyncClient(base_url=exam.base) as client:
                async with asyncio.timeout(10):
                    while True:
                        snapshot = (
                            await client.get(
                                "/api/proctor/candidates", headers=exam.proctor_headers()
                            )
                        ).json()
                        left = {c["student"]: c["time_left_s"] for c in snapshot["candidates"]}
                        if left["s2"] > left["s1"] + 800:
                            break
                        await asyncio.sleep(0.2)
            await asyncio.gather(
                *(
                    candidate_in_browser(browser, exam, s, tmp_path / s, gateways)
                    for s in ("s1", "s2")
                )
            )
            # the dashboard shows the scores without a reload (server-sent events)
            await proctor.locator('tr[data-student="s1"] td.score', has_text="100").wait_for()
            await proctor.click("#end")
            await proctor.locator("#closing", has_text="certificates: s1, s2").wait_for(
                timeout=60_000
            )
            await browser.close()
    finally:
        await stop_all(gateways, exam)
    check_outputs(exam)


def check_outputs(exam: RunningExam) -> None:
    """The gradebook, both certificates and the audit log; an edited log line fails."""
    with (exam.out / "gradebook.csv").open(newline="", encoding="utf-8") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert rows["s1"]["score"] == rows["s2"]["score"] == "100"
    key = ["--public-key", str(exam.key_file)]
    for student in ("s1", "s2"):
        certificate = exam.out / "certificates" / f"{student}.html"
        done = subprocess.run(
            [*iiotlab_command(), "verify", str(certificate), *key],
            env=exam.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    log = exam.out / "audit.jsonl"
    verify = [*iiotlab_command(), "exam", "verify-log", str(log), *key]
    assert subprocess.run(verify, env=exam.env, capture_output=True).returncode == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"kind": "', '"kind": "x', 1)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert subprocess.run(verify, env=exam.env, capture_output=True).returncode == 1
