"""lab.yaml loading: every shipped lab loads; broken files say file, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.spec import load_lab
from iiotlab.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
id: lab-x
title: {en: T, zh: T}
summary: {en: S, zh: S}
track: edge
positions: [4, "system integration engineer"]
plant: tank
duration_s: 20
scenario:
  - {at: 5, action: broker_outage, duration: 2}
checks:
  - id: values
    kind: values_match_truth
    points: 10
    params: {min_fraction: 0.8}
    hint: {en: H, zh: H}
"""


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "lab-x"
    folder.mkdir()
    (folder / "lab.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(
    "path", sorted((ROOT / "labs").glob("*/lab.yaml")), ids=lambda p: p.parent.name
)
def test_shipped_labs_load(path: Path) -> None:
    lab = load_lab(path)
    assert lab.id == path.parent.name
    assert lab.max_score > 0 and lab.title.zh and lab.summary.zh
    assert all(check.hint.en and check.hint.zh for check in lab.checks)


def test_good_lab_normalises_positions(tmp_path: Path) -> None:
    lab = load_lab(write(tmp_path, GOOD))
    assert lab.positions == (4, 15)
    assert lab.device_name == "tank-1"
    assert lab.scenario[0].action == "broker_outage"


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("duration_s: 20\n", "duration_s: 20\ncolour: red\n", 8, ["unknown key", "colour"]),
        (
            "{at: 5, action: broker_outage, duration: 2}",
            "{at: 5, action: broker_outage, lenght: 2}",
            9,
            ["unknown key", "scenario.0.lenght"],
        ),
        (
            "kind: values_match_truth",
            "kind: values_match_truht",
            12,
            ["unknown check kind", "values_match_truht", "gateway_online", "broker_security"],
        ),
        (
            "{min_fraction: 0.8}",
            "{min_fractoin: 0.8}",
            14,
            ["unknown key", "checks.0.params.min_fractoin"],
        ),
        ("{min_fraction: 0.8}", "{min_fraction: 2}", 14, ["checks.0.params.min_fraction"]),
        ("track: edge", "track: cooking", 4, ["track", "cooking"]),
        ("positions: [4, ", "positions: [9, ", 5, ["positions"]),
        ("hint: {en: H, zh: H}", "hint: {en: H}", 15, ["checks.0.hint.zh"]),
    ],
)
def test_broken_lab_names_file_key_line(
    tmp_path: Path, old: str, new: str, line: int, words: list[str]
) -> None:
    assert old in GOOD
    folder = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_lab(folder)
    message = str(info.value)
    assert f"lab.yaml:{line}:" in message, message
    for word in words:
        assert word in message


def test_duplicate_check_ids_are_errors(tmp_path: Path) -> None:
    text = (
        GOOD
        + """\
  - id: values
    kind: contract_conformance
    points: 5
    hint: {en: H, zh: H}
"""
    )
    with pytest.raises(ConfigError, match=r"lab.yaml:16: duplicate check id"):
        load_lab(write(tmp_path, text))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_lab(write(tmp_path, "id: [unclosed\n"))
    with pytest.raises(ConfigError, match="lab file not found"):
        load_lab(tmp_path / "nowhere")


def test_id_must_match_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="differs from its folder"):
        load_lab(write(tmp_path, GOOD.replace("id: lab-x", "id: lab-y")))


def test_plant_events_are_checked_when_the_lab_loads(tmp_path: Path) -> None:
    bad = GOOD.replace(
        "  - {at: 5, action: broker_outage, duration: 2}\n",
        "  - {at: 5, action: broker_outage, duration: 2}\n"
        "  - {at: 8, action: plant_event, event: {kind: earthquake, tag: level}}\n",
    )
    with pytest.raises(ConfigError, match=r"lab\.yaml:10: bad plant_event.*earthquake"):
        load_lab(write(tmp_path, bad))


def test_prepare_resolves_checks_once_against_the_registry_passed_in(tmp_path: Path) -> None:
    from pydantic import BaseModel

    from grader.checks.registry import CheckParams, CheckRegistry, check
    from grader.spec import prepare_lab

    class Limit(CheckParams):
        min_fraction: float

    registry = CheckRegistry()

    @check("values_match_truth", params=Limit, registry=registry)
    def _values(ctx: object) -> object:  # a stand-in kind, registered in this registry only
        raise AssertionError("not evaluated here")

    plan = prepare_lab(write(tmp_path, GOOD), registry)
    (resolved,) = plan.checks
    assert resolved.kind is registry.get("values_match_truth")
    assert isinstance(resolved.params, BaseModel) and resolved.params.min_fraction == 0.8
    with pytest.raises(ConfigError, match="unknown check kind"):
        prepare_lab(tmp_path / "lab-x", CheckRegistry())
