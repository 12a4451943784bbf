"""exam.yaml: validated like lab.yaml, labs resolved through the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.exam.spec import load_exam
from iiotlab.errors import ConfigError

GOOD = """\
id: edge-engineer-2027-03
title: {en: "Edge computing engineer: practical", zh: "边缘计算工程师实操考核"}
position: 4
time_limit_min: 90
pass_mark: 60
feedback: score
counts: best
tasks:
  - {lab: net-01-modbus-datasheet, points: 30, attempts: 3}
  - {lab: edge-01-modbus-to-mqtt, points: 70, attempts: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exam.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_example_loads_with_its_labs(tmp_path: Path) -> None:
    exam = load_exam(write(tmp_path, GOOD))
    assert exam.spec.max_points == 100
    assert [t.id for t in exam.tasks] == ["net-01-modbus-datasheet", "edge-01-modbus-to-mqtt"]
    assert exam.tasks[1].spec.attempts == 2
    assert exam.spec.position_name == "edge computing engineer"


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    text = GOOD.replace("counts: best", "counts: best\ncount: last")
    with pytest.raises(ConfigError) as info:
        load_exam(write(tmp_path, text))
    assert info.value.line == 8 and info.value.key == "count"
    assert "unknown key" in str(info.value) and "exam.yaml:8" in str(info.value)


def test_unknown_key_inside_a_task(tmp_path: Path) -> None:
    text = GOOD.replace("attempts: 2}", "attempts: 2, weight: 1}")
    with pytest.raises(ConfigError) as info:
        load_exam(write(tmp_path, text))
    assert info.value.key == "tasks.1.weight" and info.value.line == 10


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("feedback: score", "feedback: verbose", "feedback"),
        ("counts: best", "counts: first", "counts"),
        ("position: 4", "position: 99", "position"),
        ("pass_mark: 60", "pass_mark: 160", "pass_mark"),
        ("attempts: 3}", "attempts: 0}", "tasks.0.attempts"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_exam(write(tmp_path, GOOD.replace(old, new)))
    assert info.value.key == key


def test_unknown_lab_lists_the_known_ids(tmp_path: Path) -> None:
    text = GOOD.replace("net-01-modbus-datasheet", "net-99-nothing")
    with pytest.raises(ConfigError) as info:
        load_exam(write(tmp_path, text))
    assert info.value.line == 9 and info.value.key == "tasks.0.lab"
    assert "edge-01-modbus-to-mqtt" in str(info.value)


def test_a_lab_that_grades_a_submitted_file_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("net-01-modbus-datasheet", "sec-01-broker-hardening")
    with pytest.raises(ConfigError, match="cannot be an exam task"):
        load_exam(write(tmp_path, text))


def test_multi_plant_labs_are_tasks_but_not_one_scored_by_hand(tmp_path: Path) -> None:
    for lab in ("net-04-identifier-resolution", "int-02-sizing"):
        exam = load_exam(write(tmp_path, GOOD.replace("net-01-modbus-datasheet", lab)))
        assert exam.tasks[0].lab.is_line
    text = GOOD.replace("net-01-modbus-datasheet", "int-01-line-integration")
    with pytest.raises(ConfigError, match="scores by hand"):
        load_exam(write(tmp_path, text))


def test_position_by_name_and_duplicate_lab(tmp_path: Path) -> None:
    exam = load_exam(write(tmp_path, GOOD.replace("position: 4", "position: security engineer")))
    assert exam.spec.position == 12
    twice = GOOD.replace("net-01-modbus-datasheet", "edge-01-modbus-to-mqtt")
    with pytest.raises(ConfigError, match="the same lab twice"):
        load_exam(write(tmp_path, twice))
