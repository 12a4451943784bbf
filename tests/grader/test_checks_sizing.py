"""change_latency and modbus_connections on hand-made observations of a two-tank line."""

from __future__ import annotations

from typing import Any

import pytest

from grader.checks.sizing import percentile
from grader.observation import (
    ActionRecord,
    DeviceObservation,
    ObservedMessage,
    TruthEvent,
    TruthSeries,
)
from tests.grader.builders import SHEET, T0, observation, run_check, telemetry, truth
from tests.grader.test_line import OTHER, SHEET_2, as_device

pytestmark = pytest.mark.unit

SPIKE = {"tag": "level", "magnitude": 1.5, "duration_s": 3.0}


def spike_at(device: str, at_ms: int) -> TruthEvent:
    return TruthEvent(at_ms, "spike", device, SPIKE)


def arrival(seq: int, sampled: int, received: int, level: float) -> ObservedMessage:
    return telemetry(seq, sampled, {"level": level}, received=received)


def spiked(events: list[TruthEvent], device: str) -> TruthSeries:
    """The builders' truth with each of the device's spikes served (level + 1.5 for 3 s)."""
    mine = [e for e in events if e.device == device]
    samples = []
    for ts, values in truth().samples:
        level = values["level"]
        assert isinstance(level, float)
        if any(e.ts_ms <= ts < e.ts_ms + 3000 for e in mine):
            values = {**values, "level": level + 1.5}
        samples.append((ts, values))
    return TruthSeries(tuple(samples))


def line(messages: list[ObservedMessage], events: list[TruthEvent], **extra: Any) -> Any:
    devices = (
        DeviceObservation("tank-1", "tank", SHEET, spiked(events, "tank-1"), modbus_connections=1),
        DeviceObservation(OTHER, "tank", SHEET_2, spiked(events, OTHER), modbus_connections=1),
    )
    return observation(
        messages, line=devices, truth_events=tuple(events), **({"actions": ()} | extra)
    )


def stream(latencies: dict[str, list[int]], events: list[TruthEvent]) -> list[ObservedMessage]:
    """Per device, a message showing each spike `latency` ms after it (level + 1.5 m)."""
    out: list[ObservedMessage] = []
    for device, device_latencies in latencies.items():
        mine = [e for e in events if e.device == device]
        messages = []
        for seq, (event, latency) in enumerate(zip(mine, device_latencies, strict=True)):
            base = truth().value_at("level", event.ts_ms - 1)
            assert isinstance(base, float)
            sampled = event.ts_ms + max(0, latency - 50)
            messages.append(arrival(seq, sampled, event.ts_ms + latency, base + 1.5))
        out += messages if device == "tank-1" else as_device(messages, device)
    return out


# spaced to stay clear of the 20 s wrap of the builders' level ramp
EVENTS = [spike_at("tank-1", T0 + 5000 + 4000 * i) for i in range(5)] + [
    spike_at(OTHER, T0 + 6000 + 3500 * i + (1500 if i == 4 else 0)) for i in range(5)
]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile(list(range(1, 41)), 0.95) == 38
    assert percentile([7], 0.95) == 7


def test_fast_arrivals_pass() -> None:
    latencies = {"tank-1": [200, 300, 250, 400, 350], OTHER: [300, 500, 450, 380, 900]}
    outcome = run_check("change_latency", line(stream(latencies, EVENTS), EVENTS), max_p95_ms=1500)
    assert outcome.passed, outcome.message
    saw = outcome.evidence["saw"]
    assert saw["arrived"] == 10 and saw["arrival"]["max_ms"] == 900
    assert saw["sampling"]["max_ms"] == 850  # sampled 50 ms before it arrived


def test_a_slow_device_fails_the_percentile() -> None:
    latencies = {"tank-1": [200, 300, 250, 400, 350], OTHER: [2100, 2500, 2800, 2300, 2600]}
    outcome = run_check("change_latency", line(stream(latencies, EVENTS), EVENTS), max_p95_ms=1500)
    assert not outcome.passed and "p95 sampling delay 2750 ms" in outcome.message
    assert outcome.points == 3.33  # all arrived: 1 of 3 weights


def test_a_change_never_reported_is_missed() -> None:
    latencies = {"tank-1": [200, 300, 250, 400, 350], OTHER: [300, 500, 450, 380, 900]}
    messages = stream(latencies, EVENTS)[:-1]  # the last spike of tank-2 never arrives
    outcome = run_check("change_latency", line(messages, EVENTS), max_p95_ms=1500)
    assert not outcome.passed and "9 of 10 changes arrived" in outcome.message
    assert outcome.evidence["saw"]["missed"] == [{"device": OTHER, "event_ms": EVENTS[-1].ts_ms}]


def test_an_old_value_sampled_before_the_change_does_not_count() -> None:
    event = spike_at("tank-1", T0 + 5000)
    base = truth().value_at("level", T0 + 4999)
    assert isinstance(base, float)
    # arrives after the spike but was sampled 2 s before it (a replayed, buffered value)
    stale = arrival(1, T0 + 3000, T0 + 5100, base + 1.5)
    outcome = run_check("change_latency", line([stale], [event]), max_p95_ms=1500)
    assert not outcome.passed and outcome.evidence["saw"]["arrived"] == 0


def test_a_gateway_that_polls_slower_than_the_change_lasts_misses_it() -> None:
    latencies = {"tank-1": [200, 300, 250, 400, 350], OTHER: [300, 500, 450, 380, 3400]}
    outcome = run_check("change_latency", line(stream(latencies, EVENTS), EVENTS), max_p95_ms=1500)
    assert not outcome.passed and "9 of 10 changes arrived" in outcome.message


def test_a_ts_moved_before_the_change_is_no_sample_of_it() -> None:
    event = spike_at("tank-1", T0 + 5000)
    base = truth().value_at("level", T0 + 4999)
    assert isinstance(base, float)
    # read at 5.9 s, but the gateway claims it sampled at 4.5 s: the truth then had no spike
    early = arrival(1, T0 + 4500, T0 + 6000, base + 1.5)
    outcome = run_check("change_latency", line([early], [event]), max_p95_ms=1500)
    assert outcome.evidence["saw"]["arrived"] == 0 and not outcome.passed


def test_a_change_that_arrives_too_late_fails_the_arrival_part() -> None:
    latencies = {"tank-1": [200, 300, 250, 400, 12_000], OTHER: [300, 500, 450, 380, 900]}
    messages = stream(latencies, EVENTS)
    # sampled at once, but stuck 12 s on the way (a drain that never catches up)
    last = [m for m in messages if m.topic.endswith("/tank-1/telemetry")][-1]
    fixed = [m for m in messages if m is not last]
    event = [e for e in EVENTS if e.device == "tank-1"][-1]
    base = truth().value_at("level", event.ts_ms - 1)
    assert isinstance(base, float)
    fixed.append(arrival(9, event.ts_ms + 300, event.ts_ms + 12_000, base + 1.5))
    outcome = run_check("change_latency", line(fixed, EVENTS), max_p95_ms=1500)
    assert not outcome.passed and "1 later than 10000 ms" in outcome.message
    assert outcome.points == pytest.approx(6.67)


def test_no_spike_in_the_scenario_is_a_lab_error() -> None:
    outcome = run_check("change_latency", line([], []), max_p95_ms=1500)
    assert outcome.points == 0 and "lab error" in outcome.evidence["saw"]["note"]


def connections(first: int, second: int, **extra: Any) -> Any:
    devices = (
        DeviceObservation("tank-1", "tank", SHEET, truth(), modbus_connections=first),
        DeviceObservation(OTHER, "tank", SHEET_2, truth(), modbus_connections=second),
    )
    return observation([], line=devices, **extra)


def test_one_connection_per_plc_passes_and_many_fail() -> None:
    assert run_check("modbus_connections", connections(1, 2), max_per_device=3).passed
    outcome = run_check("modbus_connections", connections(1, 11), max_per_device=3)
    assert not outcome.passed and outcome.points == 5
    assert f"{OTHER}: 11 connections (<= 3)" in outcome.message
    never = run_check("modbus_connections", connections(0, 1), max_per_device=3)
    assert not never.passed  # a PLC nobody connected to is no evidence of a good gateway


def test_a_plc_outage_allows_one_reconnect_on_that_device() -> None:
    outage = (ActionRecord("plc_outage", T0 + 5000, T0 + 8000, {"device": OTHER}),)
    assert run_check("modbus_connections", connections(1, 4, actions=outage)).passed
    assert not run_check("modbus_connections", connections(4, 1, actions=outage)).passed


def test_connections_need_a_line() -> None:
    outcome = run_check("modbus_connections", observation([]))
    assert outcome.points == 0 and "lab error" in outcome.message


def test_a_starved_grader_is_named_in_the_verdict() -> None:
    from grader.observation import TruthSeries

    slow = TruthSeries(tuple((ts, v) for ts, v in truth().samples if (ts - T0) % 600 == 0))
    devices = (
        DeviceObservation("tank-1", "tank", SHEET, slow, modbus_connections=1),
        DeviceObservation(OTHER, "tank", SHEET_2, slow, modbus_connections=1),
    )
    obs = observation([], line=devices, truth_events=tuple(EVENTS))
    outcome = run_check("change_latency", obs, max_p95_ms=1500)
    assert outcome.evidence["saw"]["simulator_tick_p95_ms"] == 600
    assert not outcome.passed and "overloaded" in outcome.message
    quiet = run_check("change_latency", line([], EVENTS), max_p95_ms=1500)
    assert not quiet.passed
    assert quiet.evidence["saw"]["simulator_tick_p95_ms"] == 100
    assert "overloaded" not in quiet.message
