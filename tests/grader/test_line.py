"""Multi-plant labs: the spec, per-device checks, the manual part, and a real line graded.

Unit tests build observations of a two-device line by hand; the integration test runs two
real simulators (a tank over Modbus, a boiler over OPC UA) with the reference gateway
serving the line, and a gateway that serves only the first device.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.manual import score_manual
from grader.observation import ActionRecord, DeviceObservation, ObservedMessage
from grader.pipeline import grade_one
from grader.results import read_result_data
from grader.signing import verify, write_new_key
from grader.spec import load_lab
from iiotlab.errors import ConfigError, SignatureError
from iiotlab.settings import Settings
from tests.grader.builders import SHEET, T0, TENANT, good_stream, observation, run_check, truth

OTHER = "tank-2"
SHEET_2 = SHEET.model_copy(update={"device": OTHER})


def as_device(messages: list[ObservedMessage], device: str) -> list[ObservedMessage]:
    """The same messages, published by `device`."""
    out = []
    for m in messages:
        data = json.loads(m.payload)
        data["device"] = device
        topic = m.topic.replace("/tank-1/", f"/{device}/")
        out.append(ObservedMessage(topic, json.dumps(data).encode(), m.received_ms))
    return out


def line_observation(second: list[ObservedMessage], **extra: Any) -> Any:
    line = (
        DeviceObservation("tank-1", "tank", SHEET, truth()),
        DeviceObservation(OTHER, "tank", SHEET_2, truth()),
    )
    return observation(good_stream() + second, line=line, **extra)


# -- unit: per-device checks ----------------------------------------------------------


@pytest.mark.unit
def test_values_grade_every_device_of_the_line() -> None:
    good = run_check("values_match_truth", line_observation(as_device(good_stream(), OTHER)))
    assert good.passed and good.points == 10
    assert set(good.evidence["saw"]) == {"tank-1", OTHER}

    wrong = as_device(good_stream(transform={"level": lambda ts, v: v * 10}), OTHER)
    outcome = run_check("values_match_truth", line_observation(wrong))
    assert not outcome.passed
    assert f"{OTHER}: 1 of 4 tags wrong (level" in outcome.message
    assert "tank-1:" not in outcome.message
    assert outcome.points == pytest.approx(10 * 7 / 8)  # 1 tag of 8 (4 per device)


@pytest.mark.unit
def test_values_of_a_silent_device_fail() -> None:
    outcome = run_check("values_match_truth", line_observation([]))
    assert not outcome.passed and outcome.points == 5.0


@pytest.mark.unit
def test_each_device_averages_and_names_the_failing_device() -> None:
    obs = line_observation(as_device(good_stream(), OTHER)[:3])  # tank-2 stops after 3 s
    outcome = run_check("each_device", obs, check="deadband_heartbeat")
    assert not outcome.passed
    assert OTHER in outcome.message and "tank-1:" not in outcome.message
    assert 0 < outcome.points < 10
    only_first = run_check("each_device", obs, check="deadband_heartbeat", devices=["tank-1"])
    assert only_first.passed and only_first.points == 10


@pytest.mark.unit
def test_each_device_sees_only_the_steps_aimed_at_it() -> None:
    outage = ActionRecord("plc_outage", T0 + 10_000, T0 + 14_000, {"device": OTHER})
    obs = line_observation(as_device(good_stream(), OTHER), actions=(outage,))
    assert obs.for_device(OTHER).actions == (outage,)
    assert obs.for_device("tank-1").actions == ()
    assert obs.for_device(OTHER).device == OTHER and obs.for_device(OTHER).line == ()
    # tank-1 had no outage: "lab error" there; tank-2 reported good data through it: fails
    outcome = run_check("each_device", obs, check="plc_outage_recovery", devices=[OTHER])
    assert not outcome.passed


@pytest.mark.unit
def test_each_device_refuses_probing_kinds_and_bad_params() -> None:
    with pytest.raises(ValueError, match="probe"):
        run_check("each_device", line_observation([]), check="gateway_online")
    with pytest.raises(ValueError, match="not a check kind"):
        run_check("each_device", line_observation([]), check="nope")
    with pytest.raises(ValueError, match="min_fraction"):
        run_check(
            "each_device",
            line_observation([]),
            check="values_match_truth",
            params={"min_fraction": 3},
        )
    lab_error = run_check(
        "each_device", line_observation([]), check="contract_conformance", devices=["press-9"]
    )
    assert lab_error.points == 0 and "lab error" in lab_error.message


# -- unit: the spec -------------------------------------------------------------------

LAB: dict[str, Any] = {
    "id": "line-x",
    "title": {"en": "t", "zh": "t"},
    "summary": {"en": "s", "zh": "s"},
    "track": "integration",
    "positions": [15],
    "plants": [
        {"plant": "tank", "device": "tank-1"},
        {"plant": "boiler", "device": "boiler-1", "protocol": "opcua"},
    ],
    "duration_s": 10,
    "checks": [
        {"id": "v", "kind": "values_match_truth", "points": 1, "hint": {"en": "h", "zh": "h"}}
    ],
}


def write_lab(tmp_path: Path, **changes: Any) -> Path:
    folder = tmp_path / "line-x"
    folder.mkdir(exist_ok=True)
    (folder / "lab.yaml").write_text(yaml.safe_dump({**LAB, **changes}, sort_keys=False))
    return folder


@pytest.mark.unit
def test_a_line_lab_defaults_plant_and_device_to_its_first_entry(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path))
    assert lab.is_line and (lab.plant, lab.device_name) == ("tank", "tank-1")
    assert [e.protocol for e in lab.plants] == ["modbus", "opcua"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"plants": [{"plant": "tank", "device": "t", "port": 1}]}, "unknown key"),
        ({"plants": [{"plant": "press", "device": "p"}]}, "tank"),
        (
            {"plants": [{"plant": "tank", "device": "a"}, {"plant": "boiler", "device": "a"}]},
            "appears twice",
        ),
        ({"plant": "boiler"}, "differ from the first entry"),
        ({"scenario": [{"at": 1, "action": "plc_outage", "device": "press-1"}]}, "not in plants"),
        ({"plants": [{"plant": "tank", "device": "t", "protocol": "profinet"}]}, "protocol"),
    ],
)
def test_bad_line_specs_say_what_to_change(
    tmp_path: Path, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_lab(write_lab(tmp_path, **changes))
    assert says in str(info.value)


@pytest.mark.unit
def test_a_device_on_a_step_needs_a_line(tmp_path: Path) -> None:
    single = {k: v for k, v in LAB.items() if k != "plants"} | {"plant": "tank"}
    folder = tmp_path / "line-x"
    folder.mkdir()
    single["scenario"] = [{"at": 1, "action": "plc_outage", "device": "tank-1"}]
    (folder / "lab.yaml").write_text(yaml.safe_dump(single))
    with pytest.raises(ConfigError, match="multi-plant"):
        load_lab(folder)


# -- unit: the manual part ------------------------------------------------------------


@pytest.mark.unit
def test_manual_is_pending_until_the_instructor_scores_it(tmp_path: Path) -> None:
    from grader.results import CheckResult, write_result
    from grader.scoring import build_result

    outcome = run_check(
        "manual",
        observation(good_stream()),
        rubric={"en": "architecture", "zh": "架构"},
        artifact="ARCHITECTURE.md",
    )
    assert outcome.points == 0 and not outcome.passed and outcome.evidence["pending"] is True

    key = write_new_key(tmp_path / "key.pem")
    lab = load_lab(
        write_lab(
            tmp_path,
            checks=[
                {
                    "id": "v",
                    "kind": "values_match_truth",
                    "points": 10,
                    "hint": {"en": "h", "zh": "h"},
                },
                {
                    "id": "arch",
                    "kind": "manual",
                    "points": 5,
                    "hint": {"en": "h", "zh": "h"},
                    "params": {"rubric": {"en": "architecture", "zh": "架构"}},
                },
            ],
        )
    )
    checks = [
        CheckResult(
            id="v",
            kind="values_match_truth",
            points=10,
            max_points=10,
            passed=True,
            message="ok",
            hint={"en": "h", "zh": "h"},
        ),
        CheckResult(
            id="arch",
            kind="manual",
            points=0,
            max_points=5,
            passed=False,
            message=outcome.message,
            hint={"en": "h", "zh": "h"},
            evidence=outcome.evidence,
        ),
    ]
    result = build_result(lab, TENANT, 1, T0, T0 + 1000, checks)
    assert (result.score, result.pending_points, result.max_score) == (10, 5, 15)
    path = tmp_path / "result.json"
    write_result(result.model_copy(update={"signature": key.sign(result.unsigned())}), path)

    with pytest.raises(ConfigError, match="0 to 5"):
        score_manual(path, "arch", 6, "Prof Li", "", key)
    with pytest.raises(ConfigError, match="no manual check"):
        score_manual(path, "v", 1, "Prof Li", "", key)
    signed = score_manual(path, "arch", 4, "Prof Li", "clear diagram", key)
    assert (signed.score, signed.pending_points) == (14, 0)
    data = read_result_data(path)
    verify(data, key.private.public_key())
    arch = next(c for c in data["checks"] if c["id"] == "arch")
    assert arch["evidence"]["by"] == "Prof Li" and arch["evidence"]["note"] == "clear diagram"
    assert arch["evidence"]["pending"] is False and arch["evidence"]["at"]

    data["score"] = 15  # a forged result is not amended
    path.write_text(json.dumps(data))
    with pytest.raises(SignatureError):
        score_manual(path, "arch", 5, "Prof Li", "", key)


# -- integration: a real line ---------------------------------------------------------

LINE_GATEWAY = (
    f'{sys.executable} -c "import asyncio; from edge_gateway.line import '
    'line_configs_from_env, serve_line; asyncio.run(serve_line(line_configs_from_env()))"'
)
FIRST_ONLY = f"{Path(sys.executable).with_name('iiotlab')} gateway run --from-env"


@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_a_real_line_is_graded_per_device(tmp_path: Path) -> None:
    folder = write_lab(
        tmp_path,
        duration_s=12,
        opcua={"policies": ["None"]},
        scenario=[{"at": 5, "action": "plc_outage", "duration": 3, "device": "tank-1"}],
        checks=[
            {
                "id": "values",
                "kind": "values_match_truth",
                "points": 10,
                "hint": {"en": "h", "zh": "h"},
            },
            {
                "id": "plc",
                "kind": "each_device",
                "points": 10,
                "hint": {"en": "h", "zh": "h"},
                "params": {"check": "plc_outage_recovery", "devices": ["tank-1"]},
            },
        ],
    )
    settings = Settings(data_dir=tmp_path / "data")
    key = write_new_key(tmp_path / "key.pem")
    common: dict[str, Any] = {"settings": settings, "key": key, "sandbox": "none"}
    line, first = await asyncio.gather(
        grade_one(folder, "s1", out=tmp_path / "line", gateway_cmd=LINE_GATEWAY, **common),
        grade_one(folder, "s2", out=tmp_path / "first", gateway_cmd=FIRST_ONLY, **common),
    )
    assert line.gradable and line.score == line.max_score, line.checks
    assert first.gradable
    values = {c.id: c for c in first.checks}["values"]
    assert not values.passed and "boiler-1: " in values.message and "tank-1:" not in values.message

    check_manifest(tmp_path / "line" / "line" / "line.json")


def check_manifest(path: Path) -> None:
    manifest = json.loads(path.read_text())
    boiler = manifest["devices"][1]
    assert boiler["modbus"] is None and boiler["opcua_url"].startswith("opc.tcp://")
    sheets = [json.loads(Path(d["datasheet"]).read_text()) for d in manifest["devices"]]
    assert [s["device"] for s in sheets] == ["tank-1", "boiler-1"]


def test_a_relative_datasheet_is_found_beside_the_manifest(tmp_path: Path) -> None:
    """The exam portal hands out line.json with "datasheet": "<device>.json": the reference
    gateway reads it from the manifest's folder, wherever it is started."""
    from edge_gateway.line import load_line

    folder = tmp_path / "downloads"
    folder.mkdir()
    entry = {"device": "tank-1", "plant": "tank", "modbus": None, "opcua_url": None}
    manifest = folder / "line.json"
    manifest.write_text(json.dumps({"devices": [entry | {"datasheet": "tank-1.json"}]}))
    absolute = tmp_path / "elsewhere" / "tank-1.json"
    (other := tmp_path / "other.json").write_text(
        json.dumps({"devices": [entry | {"datasheet": str(absolute)}]})
    )
    assert load_line(manifest).devices[0].datasheet == folder / "tank-1.json"
    assert load_line(other).devices[0].datasheet == absolute
