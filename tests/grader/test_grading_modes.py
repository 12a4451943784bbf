"""Grading modes no other test plays: the Mosquitto broker and practice mode.

- Mosquitto: edge-01 with `broker.kind: mosquitto` (store-and-forward across a broker outage
  and the Last Will on a kill behave differently from amqtt); a gateway with a wrong
  password on Mosquitto auth.
- Practice mode (`--gateway-running`): the real CLI in a subprocess, the student's own
  gateway started from out/gateway.env; no gateway at all; a lab with a gateway_kill the
  grader cannot play.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import iiotlab.mqtt
from grader.pipeline import grade_one
from grader.results import read_result_data
from grader.signing import SigningKey, write_new_key
from grader.spec import load_lab
from iiotlab.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "labs" / "edge-01-modbus-to-mqtt"
NET = ROOT / "labs" / "net-01-modbus-datasheet"
IIOTLAB = Path(sys.executable).with_name("iiotlab")
EDGE_GATEWAY = f"{sys.executable} {EDGE / 'solution' / 'gateway.py'}"
REFERENCE_GATEWAY = f"{IIOTLAB} gateway run --from-env"
GRADE = (str(IIOTLAB), "grade")

needs_mosquitto = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed"),
]


def lab_copy(source: Path, root: Path, **changes: object) -> Path:
    """source's lab.yaml with top-level `changes` (dotted keys go one level down)."""
    data = yaml.safe_load((source / "lab.yaml").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            data[outer] = {**data.get(outer, {}), inner: value}
        else:
            data[key] = value
    folder = root / "labs" / data["id"]
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    load_lab(folder)  # validated like any lab
    return folder


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return write_new_key(tmp_path / "key.pem")


@pytest.fixture
def broker_kinds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class of every broker the grader starts (a spy: the broker itself runs)."""
    started: list[str] = []
    real = iiotlab.mqtt.make_broker

    def spy(kind: Any, config: Any) -> Any:
        broker = real(kind, config)
        started.append(type(broker).__name__)
        return broker

    monkeypatch.setattr(iiotlab.mqtt, "make_broker", spy)
    return started


def failed_checks(out: Path) -> dict[str, object]:
    data = read_result_data(out / "result.json")
    return {c["id"]: (c["message"], c["evidence"]) for c in data["checks"] if not c["passed"]}


# -- Mosquitto ----------------------------------------------------------------------------


@pytest.mark.timeout(150)
@pytest.mark.parametrize("_", [pytest.param(None, id="mosquitto", marks=needs_mosquitto)])
async def test_edge01_on_mosquitto_full_marks(
    tmp_path: Path, key: SigningKey, broker_kinds: list[str], _: None
) -> None:
    lab = lab_copy(EDGE, tmp_path, broker__kind="mosquitto")
    out = tmp_path / "out"
    result = await grade_one(
        lab,
        "mona",
        out=out,
        gateway_cmd=EDGE_GATEWAY,
        settings=Settings(data_dir=tmp_path),
        key=key,
    )
    assert result.gradable, result.reason
    assert broker_kinds == ["MosquittoBroker"]
    assert result.score == result.max_score == 100, (failed_checks(out), out)
    checks = {c.id: c for c in result.checks}
    kills = checks["online"].evidence["kills"]
    assert isinstance(kills, list) and len(kills) == 1
    assert kills[0]["offline_ms"] and kills[0]["online_again_ms"]  # the Last Will, then back
    saw = checks["store-and-forward"].evidence["saw"]
    assert isinstance(saw, dict) and not saw["gaps"] and not saw["duplicates"], saw
    messages = [json.loads(line) for line in (out / "messages.jsonl").read_text().splitlines()]
    replayed = [m for m in messages if '"replayed":true' in m["payload"].replace(" ", "")]
    assert replayed, "no replayed telemetry after the broker outage"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("_", [pytest.param(None, id="mosquitto", marks=needs_mosquitto)])
async def test_wrong_password_on_mosquitto_scores_zero_but_is_gradable(
    tmp_path: Path, key: SigningKey, broker_kinds: list[str], _: None
) -> None:
    lab = lab_copy(NET, tmp_path, broker__kind="mosquitto")
    out = tmp_path / "out"
    wrong = (
        'IIOTLAB_MQTT_URL="$(echo "$IIOTLAB_MQTT_URL" | sed "s/:[^:@/]*@/:wrong@/")" '
        f"exec {REFERENCE_GATEWAY}"
    )
    result = await grade_one(
        lab, "walt", out=out, gateway_cmd=wrong, settings=Settings(data_dir=tmp_path), key=key
    )
    assert result.gradable, result.reason
    assert broker_kinds == ["MosquittoBroker"]
    assert result.score == 0, [(c.id, c.points) for c in result.checks]
    assert not any(m for m in (out / "messages.jsonl").read_text().splitlines())
    log = (out / "gateway.log").read_text()
    assert "Not authorized" in log, log[-2000:]  # Mosquitto refused the gateway's CONNECT


# -- practice mode ------------------------------------------------------------------------


def env_file_values(path: Path, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = shlex.split(line)[0].partition("=")  # as `. gateway.env` would
        values[name] = value
    return values


def practice_grader(lab: Path, student: str, out: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """`iiotlab grade LAB --gateway-running` as a student runs it, in the background."""
    return subprocess.Popen(
        [*GRADE, str(lab), "--student", student, "--gateway-running", "--out", str(out)],
        env={**os.environ, "IIOTLAB_DATA_DIR": str(tmp_path / "data")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def start_student_gateway(variables: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            [str(IIOTLAB), "gateway", "run", "--from-env"],
            env={**os.environ, **variables},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(90)
def test_practice_mode_cli_with_the_students_own_gateway(tmp_path: Path) -> None:
    out = tmp_path / "out"
    grader = practice_grader(NET, "pia", out, tmp_path)
    gateway = None
    try:
        variables = env_file_values(out / "gateway.env", timeout_s=30)
        assert variables["IIOTLAB_TENANT"] == "pia"
        assert variables["IIOTLAB_MQTT_URL"].startswith("mqtt://gw-pia:")
        gateway = start_student_gateway(variables, tmp_path / "gateway.log")
        stdout, stderr = grader.communicate(timeout=60)
    finally:
        if gateway is not None:
            stop(gateway)
        stop(grader)  # type: ignore[arg-type]
    assert grader.returncode == 0, (stdout, stderr)
    result = json.loads((out / "result.json").read_text())
    assert result["gradable"] and result["score"] == result["max_score"] == 100, result
    assert b"gateway.env" in stderr  # the student is told where the variables are


@pytest.mark.timeout(60)
def test_practice_mode_without_a_gateway_is_not_gradable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "IIOTLAB_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    completed = subprocess.run(
        [
            *GRADE,
            str(NET),
            "--student",
            "noah",
            "--gateway-running",
            *("--wait-gateway", "2"),
            *("--out", str(out)),
        ],
        env=env,
        capture_output=True,
        timeout=50,
        check=False,
    )
    assert completed.returncode == 3, completed
    assert time.monotonic() - started < 40
    result = json.loads((out / "result.json").read_text())
    assert result["gradable"] is False and result["score"] == 0 and not result["checks"]
    assert "no message" in result["reason"] and "2 s" in result["reason"], result["reason"]
    assert b"NOT GRADABLE" in completed.stderr


@pytest.mark.timeout(90)
async def test_practice_mode_skips_the_kill_without_costing_points(
    tmp_path: Path, key: SigningKey
) -> None:
    """A short edge-01 with only the kill: recorded as skipped, online scores full."""
    data = yaml.safe_load((EDGE / "lab.yaml").read_text(encoding="utf-8"))
    online = next(c for c in data["checks"] if c["id"] == "online")
    lab = lab_copy(
        EDGE,
        tmp_path,
        duration_s=8,
        scenario=[{"at": 3, "action": "gateway_kill", "duration": 1}],
        checks=[online],
    )
    out = tmp_path / "out"
    grading = asyncio.create_task(
        grade_one(
            lab,
            "kim",
            out=out,
            gateway_running=True,
            gateway_wait_s=30,
            settings=Settings(data_dir=tmp_path),
            key=key,
        )
    )
    variables = await asyncio.to_thread(env_file_values, out / "gateway.env", 30)
    gateway = start_student_gateway(variables, tmp_path / "gateway.log")
    try:
        result = await grading
    finally:
        stop(gateway)
    assert result.gradable, result.reason
    check = result.checks[0]
    assert check.points == check.max_points == 10, (check.message, check.evidence)
    assert check.evidence["kills"] == []
    skipped = check.evidence["skipped"]
    assert isinstance(skipped, list) and skipped and "gateway_kill" in str(skipped[0])


# -- the grader's own failures ------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_a_step_the_grader_cannot_play_ends_the_run_at_once(
    tmp_path: Path, key: SigningKey
) -> None:
    """A PLC outage on a lab without a PLC: not gradable with the reason, long before the
    lab's 600 s are up."""
    lab = lab_copy(
        NET,
        tmp_path,
        modbus=False,
        duration_s=600,
        opcua={"enabled": True},
        scenario=[{"at": 1, "action": "plc_outage", "duration": 2}],
    )
    started = time.monotonic()
    result = await grade_one(
        lab,
        "gus",
        out=tmp_path / "out",
        gateway_cmd="sleep 60",
        settings=Settings(data_dir=tmp_path),
        key=key,
    )
    assert not result.gradable and result.score == 0
    assert "plc_outage" in (result.reason or "") and "no such link" in (result.reason or "")
    assert time.monotonic() - started < 120


LOWER_HARD_LIMIT = """
import asyncio, resource, sys
from pathlib import Path
from grader.sandbox import RunLimits
from tests.grader.grading_helpers import gateway_process

cap = 3 * 1024**3  # a `ulimit -v` of 3 GB in the grader's shell; the lab asks for 8 GB
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

async def main() -> None:
    folder = Path(sys.argv[1])
    gateway = gateway_process(folder, "ulimit -v", limits=RunLimits(memory_mb=8192))
    await gateway.start()
    while not gateway.exits:
        await asyncio.sleep(0.05)
    print(gateway.exits[0].returncode)

asyncio.run(main())
"""


@pytest.mark.timeout(30)
def test_gateway_starts_when_the_graders_hard_limit_is_lower(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", LOWER_HARD_LIMIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=25,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0 and completed.stdout.strip() == "0", completed.stderr
    assert str(3 * 1024 * 1024) in (tmp_path / "gateway.log").read_text()  # KB, capped


@pytest.mark.timeout(90)
def test_practice_mode_waits_for_a_proxy_lab_s_listening_port(tmp_path: Path) -> None:
    """A proxy publishes nothing over MQTT: practice mode waits for its port instead."""
    lab = ROOT / "labs" / "sec-02-modbus-write-protection"
    out = tmp_path / "out"
    grader = practice_grader(lab, "pia", out, tmp_path)
    proxy = None
    try:
        variables = env_file_values(out / "gateway.env", timeout_s=30)
        assert variables["IIOTLAB_PROXY_PORT"]
        time.sleep(1.0)  # the student takes a moment: the grader must keep waiting
        with (tmp_path / "proxy.log").open("wb") as log:
            proxy = subprocess.Popen(
                [sys.executable, "proxy.py"],
                cwd=lab / "solution",
                env={**os.environ, **variables},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stdout, stderr = grader.communicate(timeout=60)
    finally:
        if proxy is not None:
            stop(proxy)
        stop(grader)  # type: ignore[arg-type]
    assert grader.returncode == 0, (stdout, stderr)
    result = json.loads((out / "result.json").read_text())
    assert result["gradable"] and result["score"] == result["max_score"] == 100, result
