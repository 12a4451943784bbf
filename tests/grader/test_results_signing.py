"""Signed results: verify passes untouched, fails on any change; reports render."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from grader.report import render_html, render_junit
from grader.results import CheckResult, Result, write_result
from grader.signing import DEV_KEY_NAME, load_signing_key, verify, write_new_key
from iiotlab.cli import build_app
from iiotlab.errors import SignatureError
from iiotlab.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def result() -> Result:
    series = {"ts": [1, 2, 3], "truth": [1.0, 2.0, 3.0], "sent": [1.0, 9.0, 3.0]}
    return Result(
        lab="edge-01-modbus-to-mqtt",
        student="alice",
        seed="00ff00ff00ff00ff",
        started="2026-11-21T10:00:00.000+00:00",
        finished="2026-11-21T10:00:40.000+00:00",
        gradable=True,
        score=7.5,
        max_score=20,
        checks=[
            CheckResult(
                id="values",
                kind="values_match_truth",
                points=2.5,
                max_points=10,
                passed=False,
                message="level: word order",
                hint={"en": "Decode <it>", "zh": "解码"},
                evidence={"saw": {"level": {"diagnosis": "word order", "series": series}}},
            ),
            CheckResult(
                id="online",
                kind="gateway_online",
                points=5,
                max_points=10,
                passed=True,
                message="ok",
                hint={"en": "h", "zh": "提示"},
            ),
        ],
        versions={"iiotlab": "0.1.0"},
    )


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    key = write_new_key(tmp_path / "key.pem")
    res = result()
    path = tmp_path / "result.json"
    write_result(res.model_copy(update={"signature": key.sign(res.unsigned())}), path)
    public = tmp_path / "public.pem"
    public.write_text(key.public_pem())
    return path, public


def mutations(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, value in data.items():
        if key == "signature":
            continue
        changed = json.loads(json.dumps(data))
        if isinstance(value, bool):
            changed[key] = not value
        elif isinstance(value, int | float):
            changed[key] = value + 1
        elif isinstance(value, str):
            changed[key] = value + "x"
        elif isinstance(value, list):
            changed[key][0]["points"] = 10
        elif isinstance(value, dict):
            changed[key]["extra"] = "1"
        else:
            changed[key] = "x"
        out.append((key, changed))
    nested = json.loads(json.dumps(data))
    nested["checks"][0]["evidence"]["saw"]["level"]["series"]["sent"][1] = 2.0
    out.append(("evidence", nested))
    added = json.loads(json.dumps(data))
    added["comment"] = "regraded by hand"
    out.append(("new key", added))
    return out


def test_verify_untouched_and_every_tampered_field(signed: tuple[Path, Path]) -> None:
    path, public = signed
    from grader.signing import load_public_key

    key = load_public_key(public)
    data = json.loads(path.read_text())
    verify(data, key)
    fields = mutations(data)
    assert {name for name, _ in fields} >= {
        "lab",
        "student",
        "seed",
        "score",
        "checks",
        "gradable",
        "versions",
        "started",
    }
    for name, changed in fields:
        with pytest.raises(SignatureError):
            verify(changed, key)
        assert name


def test_verify_cli_exit_codes(signed: tuple[Path, Path], tmp_path: Path) -> None:
    path, public = signed
    runner = CliRunner()
    app = build_app()
    ok = runner.invoke(app, ["verify", str(path), "--public-key", str(public)])
    assert ok.exit_code == 0, ok.output
    data = json.loads(path.read_text())
    data["score"] = 20
    path.write_text(json.dumps(data))
    bad = runner.invoke(app, ["verify", str(path), "--public-key", str(public)])
    assert bad.exit_code == 1
    data.pop("signature")
    path.write_text(json.dumps(data))
    assert runner.invoke(app, ["verify", str(path), "--public-key", str(public)]).exit_code == 1
    other = write_new_key(tmp_path / "other.pem")
    (tmp_path / "other-public.pem").write_text(other.public_pem())


def test_development_key_is_created_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_signing_key(settings)
    second = load_signing_key(settings)
    assert first.public_pem() == second.public_pem()
    assert "IIOTLAB_SIGNING_KEY is not set" in caplog.text


def test_graders_starting_together_on_a_fresh_data_folder_share_one_key(tmp_path: Path) -> None:
    """Class mode starts its graders at once: they must all sign with the same key."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from grader.signing import load_signing_key\n"
        "from iiotlab.settings import Settings\n"
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
        "print(load_signing_key(Settings(data_dir=Path(sys.argv[2]))).public_pem())\n"
    )
    start = str(time.time() + 1.5)  # every process imported by then: they race for the file
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, start, str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(8)
    ]
    keys = {process.communicate(timeout=60)[0] for process in processes}
    assert len(keys) == 1 and "PUBLIC KEY" in next(iter(keys))
    assert [p.name for p in (tmp_path / "data").iterdir()] == [DEV_KEY_NAME]
    assert (tmp_path / "data" / DEV_KEY_NAME).stat().st_mode & 0o077 == 0


def test_report_html_and_junit() -> None:
    res = result()
    html = render_html(res, {"en": "Edge gateway", "zh": "边缘网关"})
    assert "<svg" in html and "7.5 / 20" in html and "提示：解码" in html
    assert "Decode &lt;it&gt;" in html  # escaped
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN
    junit = render_junit(res)
    assert 'tests="2"' in junit and 'failures="1"' in junit and "level: word order" in junit
    ungradable = res.model_copy(
        update={"gradable": False, "reason": "mosquitto missing", "checks": []}
    )
    assert "mosquitto missing" in render_html(ungradable)
    assert 'errors="1"' in render_junit(ungradable)
