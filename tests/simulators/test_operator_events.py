"""operator_write and constant_change events: the grader plays an operator on the line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iiotlab.errors import ConfigError
from simulators.scenario import parse_scenario
from simulators.simulation import Simulation, SimulationConfig

pytestmark = pytest.mark.integration


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Simulation]:
    config = SimulationConfig(
        plants=("packaging",),
        lab="lab1",
        student="bob",
        course_secret="test-secret",
        enable_opcua=False,
        tick_hz=20.0,
    )
    async with Simulation(config) as sim:
        yield sim


async def test_operator_starts_the_line_and_a_constant_changes_for_a_while(
    line: Simulation,
) -> None:
    events = parse_scenario(
        "- {at: 0, kind: operator_write, tag: line_run, value: true}\n"
        "- {at: 0, kind: constant_change, constant: reject_rate, value: 1.0, duration: 3}\n"
    ).events
    runtime = line.runtime("packaging")
    for event in events:
        await line.inject(event)
    assert runtime.snapshot()["line_run"] is True
    assert runtime.plant.constants["reject_rate"] == 1.0  # type: ignore[attr-defined]
    await asyncio.sleep(4.5)
    values = runtime.snapshot()
    assert values["state"] == 1 and values["reject_count"] >= 1  # every pack of the first 3 s
    assert runtime.plant.constants["reject_rate"] < 0.1  # type: ignore[attr-defined]
    truth = [(e.kind, e.detail) for e in line.truth.events() if e.kind != "start"]
    assert ("operator_write", {"at_s": 0.0, "tag": "line_run", "value": True}) in truth
    assert [w.source for w in line.write_log] == ["scenario:operator"]


async def test_unknown_constant_or_bad_value_is_a_config_error(line: Simulation) -> None:
    (event,) = parse_scenario(
        "- {at: 0, kind: constant_change, constant: nope, value: 1, duration: 1}"
    ).events
    with pytest.raises(ConfigError, match="reject_rate"):
        await line.inject(event)
    with pytest.raises(ConfigError, match="a number or true/false"):
        parse_scenario("- {at: 0, kind: operator_write, tag: line_run, value: on-ish}")
