"""MQTT contract v1: every payload model round-trips; every broken payload says why."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiotlab.errors import PayloadError
from iiotlab.payloads import (
    Alarm,
    Command,
    CommandAck,
    Status,
    Telemetry,
    decode_payload,
    encode_payload,
    parse_topic,
    topic,
)

pytestmark = pytest.mark.unit

metric_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@given(
    seq=st.integers(min_value=0, max_value=2**62),
    ts=st.integers(min_value=0, max_value=10**13),
    metrics=st.dictionaries(names, metric_values, max_size=8),
    replayed=st.booleans(),
)
def test_telemetry_round_trips(
    seq: int, ts: int, metrics: dict[str, bool | int | float | str], replayed: bool
) -> None:
    payload = Telemetry(v=1, device="tank-1", seq=seq, ts=ts, metrics=metrics, replayed=replayed)
    assert decode_payload("telemetry", encode_payload(payload)) == payload


def test_every_kind_round_trips() -> None:
    samples = {
        "status": Status(v=1, state="offline", ts=1),
        "cmd": Command(v=1, id="a1", metric="pump_speed_sp", value=50.0),
        "cmd/ack": CommandAck(v=1, id="a1", ok=False, error="tag is read-only"),
        "alarm": Alarm(v=1, rule="hi", state="active", metric="level", value=4.9, ts=5),
    }
    for kind, payload in samples.items():
        assert decode_payload(kind, encode_payload(payload)) == payload


def _telemetry(**changes: object) -> bytes:
    body: dict[str, object] = {
        "v": 1,
        "device": "tank-1",
        "seq": 7,
        "ts": 1763719200123,
        "metrics": {"level": 1.5, "pump_on": True},
    }
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (_telemetry(v=2), "'v' is 2"),
        (_telemetry(seq="7"), "seq"),
        (_telemetry(seq=-1), "seq"),
        (_telemetry(ts=1.5), "ts"),
        (_telemetry(metrics={"level": [1, 2]}), "metrics"),
        (_telemetry(extra_field=1), "extra_field"),
        (b'{"v":1,"device":"tank-1","seq":1,"ts":1,"metrics":{"x":1e999}}', "finite"),
        (_telemetry(metrics={"x": 10**30}), "64 bits"),
        (b"x" * 300_000, "over the"),
    ],
)
def test_broken_telemetry_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_payload("telemetry", raw)


def test_missing_field_is_named() -> None:
    raw = json.dumps({"v": 1, "device": "tank-1", "ts": 1, "metrics": {}}).encode()
    with pytest.raises(PayloadError, match="seq"):
        decode_payload("telemetry", raw)


def test_topics() -> None:
    assert topic("alice", "tank-1", "cmd/ack") == "iiot/alice/tank-1/cmd/ack"
    assert parse_topic("iiot/alice/tank-1/cmd/ack") == ("alice", "tank-1", "cmd/ack")
    for bad in ("iiot/alice/tank-1", "other/a/b/telemetry", "iiot/a/b/logs", "iiot/+/b/status"):
        with pytest.raises(PayloadError):
            parse_topic(bad)
    with pytest.raises(PayloadError, match="tenant"):
        topic("a/b", "tank-1", "status")
