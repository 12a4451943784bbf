"""Scenario YAML: valid files load sorted; broken ones name file, line, key, value."""

from __future__ import annotations

from pathlib import Path

import pytest

from iiotlab.errors import ConfigError
from simulators.scenario import EVENT_KINDS, load_scenario, parse_scenario, scenario_from_events

pytestmark = pytest.mark.unit

GOOD = """\
events:
  - at: 8
    kind: modbus_link_down
    duration: 3
  - at: 2
    kind: drift
    device: tank-1
    tag: level
    duration: 5
    rate: 0.1
  - {at: 4, kind: register_map_change, shift: 100, word_order: DCBA}
"""


def test_good_scenario_loads_sorted(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    scenario = load_scenario(path)
    assert [e.kind for e in scenario.events] == ["drift", "register_map_change", "modbus_link_down"]
    drift = scenario.events[0]
    assert (drift.tag, drift.duration_s, drift.magnitude, drift.line) == ("level", 5.0, 0.1, 5)
    assert scenario.events[1].shift == 100 and scenario.events[1].word_order == "DCBA"


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("events:\n  - at: 1\n    kind: explode\n", 3, "events[0].kind", "one of sensor_stuck"),
        ("events:\n  - at: soon\n    kind: plc_restart\n", 2, "events[0].at", "a number"),
        ("events:\n  - at: 1\n    kind: spike\n    tag: level\n", 2, "events[0].magnitude", "keys"),
        (
            "events:\n  - at: 1\n    kind: opcua_restart\n    duraton: 2\n",
            4,
            "events[0].duraton",
            "keys at",
        ),
        ("events:\n  - at: -1\n    kind: plc_restart\n", 2, "events[0].at", ">= 0"),
        (
            "events:\n  - {at: 1, kind: register_map_change, word_order: XYZW}\n",
            2,
            "events[0].word_order",
            "ABCD",
        ),
        ("evnts: []\n", 1, "evnts", "'events'"),
    ],
)
def test_broken_scenario_names_file_line_key(text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text, "lab/scenario.yaml")
    error = info.value
    assert (error.file, error.line, error.key) == ("lab/scenario.yaml", line, key)
    assert error.expected and fragment in error.expected
    assert "lab/scenario.yaml:" in str(error)


def test_not_yaml_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        parse_scenario("events: [\n", "x.yaml")
    assert info.value.line is not None
    with pytest.raises(ConfigError, match="not found"):
        load_scenario("/nonexistent/scenario.yaml")


def test_every_kind_parses_from_lab_events() -> None:
    minimal = {"tag": "level", "duration": 1, "rate": 0.1, "magnitude": 1, "sigma": 0.1}
    minimal.update({"value": 1, "constant": "reject_rate"})
    events = []
    for kind, (required, _) in EVENT_KINDS.items():
        events.append({"at": 1, "kind": kind, **{k: minimal[k] for k in required}})
    scenario = scenario_from_events(events)
    assert {e.kind for e in scenario.events} == set(EVENT_KINDS)
