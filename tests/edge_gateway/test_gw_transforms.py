"""Edge transforms and report by exception (deadband, heartbeat, quality)."""

from __future__ import annotations

import math

import pytest

from edge_gateway.config import TransformConfig
from edge_gateway.reporting import DeadbandRule, ReportByException
from edge_gateway.transforms import TransformSet

pytestmark = pytest.mark.unit


def run(kind: str, samples: list[tuple[int, float]], window_s: float = 1.0) -> list[float | None]:
    transforms = TransformSet([TransformConfig(name="out", tag="x", kind=kind, window_s=window_s)])
    return [transforms.apply(ts, {"x": value}).get("out") for ts, value in samples]


def test_moving_average_slides() -> None:
    out = run("moving_average", [(0, 1.0), (500, 3.0), (1000, 5.0), (1600, 7.0)])
    assert out == [1.0, 2.0, 3.0, 6.0]  # at 1600 ms the window holds 1000 and 1600


def test_rms_of_a_sine_is_amplitude_over_root_two() -> None:
    samples = [(t, 2.0 * math.sin(2 * math.pi * 5 * t / 1000)) for t in range(0, 3000, 10)]
    out = run("rms", samples, window_s=1.0)
    assert out[-1] == pytest.approx(2.0 / math.sqrt(2), rel=0.02)


def test_rate_of_change_per_second() -> None:
    out = run("rate_of_change", [(0, 10.0), (500, 11.0), (1000, 12.0), (2000, 16.0)])
    assert out[0] is None
    assert out[1:3] == [pytest.approx(2.0), pytest.approx(2.0)]
    assert out[3] == pytest.approx(4.0)  # window now 1000..2000


def test_tumbling_min_max_mean_emit_once_per_window() -> None:
    samples = [(0, 4.0), (400, 1.0), (800, 7.0), (1000, 2.0), (1500, 3.0), (2000, 9.0)]
    assert run("min", samples) == [None, None, None, 1.0, None, 2.0]
    assert run("max", samples) == [None, None, None, 7.0, None, 3.0]
    assert run("mean", samples) == [None, None, None, 4.0, None, 2.5]


def test_transforms_skip_non_numeric_and_missing_values() -> None:
    transforms = TransformSet([TransformConfig(name="o", tag="x", kind="max", window_s=1)])
    assert transforms.apply(0, {"x": True}) == {}
    assert transforms.apply(10, {"x": None}) == {}
    assert transforms.apply(20, {}) == {}


def test_deadband_absolute_and_percent() -> None:
    absolute = DeadbandRule(absolute=0.5)
    assert not absolute.exceeded(10.0, 10.5)
    assert absolute.exceeded(10.0, 10.51)
    percent = DeadbandRule(percent=1.0, span=200.0)  # 1 % of a 0..200 range = 2
    assert not percent.exceeded(50.0, 52.0)
    assert percent.exceeded(50.0, 52.1)
    no_span = DeadbandRule(percent=10.0)  # 10 % of the last value
    assert not no_span.exceeded(50.0, 54.0) and no_span.exceeded(50.0, 56.0)
    assert DeadbandRule(absolute=5).exceeded(True, False)


def test_report_by_exception_sends_changes_and_heartbeats() -> None:
    reporter = ReportByException({"t": DeadbandRule(absolute=1.0)}, heartbeat_s=10)
    first = reporter.update({"t": 20.0, "on": True}, 0)
    assert first is not None and first.heartbeat
    assert first.metrics == {"t": 20.0, "on": True}
    assert first.quality == {"t": "good", "on": "good"}
    assert reporter.update({"t": 20.5, "on": True}, 1000) is None
    change = reporter.update({"t": 21.2, "on": True}, 2000)
    assert change is not None and change.metrics == {"t": 21.2}
    assert reporter.heartbeat(5000) is None
    beat = reporter.heartbeat(12000)
    assert beat is not None and beat.metrics == {"t": 21.2, "on": True} and beat.ts_ms == 12000


def test_bad_quality_is_reported_once_and_recovery_always() -> None:
    reporter = ReportByException({}, heartbeat_s=100)
    reporter.update({"t": 1.0}, 0)
    bad = reporter.update({"t": None}, 1000)
    assert bad is not None and bad.metrics == {} and bad.quality == {"t": "bad"}
    assert reporter.update({"t": None}, 2000) is None
    good = reporter.update({"t": 1.0}, 3000)  # same value as before, but quality changed
    assert good is not None and good.metrics == {"t": 1.0} and good.quality == {"t": "good"}
    beat = reporter.update({"t": float("nan")}, 200_000)
    assert beat is not None and "t" not in beat.metrics and beat.quality == {"t": "bad"}


def test_heartbeat_does_not_resend_a_polled_value_whose_reads_hang() -> None:
    """A read hanging on a dead PLC link: the heartbeat must not pass the old value off as
    fresh; an OPC UA tag (no max age) keeps its last value, silence meaning no change."""
    reporter = ReportByException({}, heartbeat_s=5, max_age_s={"polled": 3.0})
    reporter.update({"polled": 1.5, "subscribed": 7.0}, 0)
    reporter.update({"polled": 1.5}, 1000)  # last successful read
    beat = reporter.heartbeat(5000)  # no read since 1000: older than 3 s
    assert beat is not None and beat.metrics == {"subscribed": 7.0}
    assert beat.quality == {"polled": "bad", "subscribed": "good"}
    back = reporter.update({"polled": 1.5}, 6000)
    assert back is not None and back.metrics == {"polled": 1.5} and back.quality["polled"] == "good"
    fresh = ReportByException({}, heartbeat_s=5, max_age_s={"polled": 3.0})
    fresh.update({"polled": 2.0}, 0)
    fresh.update({"polled": 2.0}, 4000)
    beat = fresh.heartbeat(5000)
    assert beat is not None and beat.metrics == {"polled": 2.0}


def test_max_age_is_two_poll_intervals_plus_a_second_for_modbus_tags_only() -> None:
    from edge_gateway.config import GatewayConfig
    from edge_gateway.gateway import max_ages

    config = GatewayConfig.model_validate(
        {
            "tenant": "t",
            "device": "d",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "sources": {
                "plc": {"kind": "modbus", "host": "127.0.0.1", "port": 502, "poll_interval_s": 0.5},
                "ua": {"kind": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840"},
            },
            "poll_groups": {"slow": 10},
            "tags": [
                {"name": "a", "source": "plc", "table": "holding", "address": 0, "type": "int16"},
                {
                    "name": "b",
                    "source": "plc",
                    "table": "holding",
                    "address": 1,
                    "type": "int16",
                    "poll_group": "slow",
                },
                {"name": "c", "source": "ua", "node_id": "ns=2;s=X", "type": "float32"},
            ],
        }
    )
    assert max_ages(config) == {"a": 2.0, "b": 21.0}
