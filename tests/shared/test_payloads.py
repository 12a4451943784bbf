"""MQTT contract v1: every payload model round-trips; every broken payload says why."""

from __future__ import annotations

import contextlib
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
        (_telemetry(v=True), "'v' is True, contract v1 needs the integer 1"),
        (_telemetry(v=1.0), "'v' is 1.0"),
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


# Hostile input (issue #12): decode_payload raises PayloadError and nothing else.

_HEAD = b'{"v":1,"device":"tank-1","seq":1,"ts":1,"metrics":{"x":'


def _nested(depth: int) -> bytes:
    return _HEAD + b"[" * depth + b"]" * depth + b"}}"


@pytest.mark.parametrize("depth", [17, 1_000, 50_000])
def test_deep_nesting_is_a_payload_error(depth: int) -> None:
    with pytest.raises(PayloadError, match=r"nests objects/arrays .* over the limit of 16"):
        decode_payload("telemetry", _nested(depth))


def test_depth_limit_is_a_parameter() -> None:
    with pytest.raises(PayloadError, match="3 levels deep, over the limit of 2"):
        decode_payload("telemetry", _nested(1), max_depth=2)
    flat = _telemetry()
    assert isinstance(decode_payload("telemetry", flat, max_depth=2), Telemetry)
    # brackets inside strings are not nesting
    text = _telemetry(metrics={"label": "[" * 40 + "{" * 40})
    assert isinstance(decode_payload("telemetry", text), Telemetry)


def test_size_limit_is_a_parameter_and_says_what_to_change() -> None:
    raw = _telemetry(metrics={"x": "a" * 900})
    assert isinstance(decode_payload("telemetry", raw), Telemetry)
    with pytest.raises(PayloadError, match=rf"{len(raw)} bytes, over the limit of 500 .*smaller"):
        decode_payload("telemetry", raw, max_bytes=500)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(constant: bytes) -> None:
    with pytest.raises(PayloadError, match=r"not JSON.*finite"):
        decode_payload("telemetry", _HEAD + constant + b"}}")


@pytest.mark.parametrize("digits", [20, 21, 4_300, 5_000, 100_000])
def test_huge_integers_say_64_bits(digits: int) -> None:
    with pytest.raises(PayloadError, match="64 bits"):
        decode_payload("telemetry", _HEAD + b"9" * digits + b"}}")
    with pytest.raises(PayloadError):
        decode_payload("telemetry", b'{"v":1,"device":"tank-1","seq":' + b"9" * digits + b"}")


def test_lone_surrogate_is_refused_and_pairs_are_kept() -> None:
    with pytest.raises(PayloadError, match="surrogate"):
        decode_payload(
            "telemetry", b'{"v":1,"device":"tank-1","seq":1,"ts":1,"metrics":{"\\ud800":1}}'
        )
    paired = decode_payload("telemetry", _HEAD + b'"\\ud83d\\ude00"}}')
    assert isinstance(paired, Telemetry) and paired.metrics["x"] == "\U0001f600"


def test_reasons_stay_short_whatever_was_sent() -> None:
    for raw in (
        b'{"v":"' + b"x" * 100_000 + b'"}',
        _telemetry(metrics={"n" * 100_000: 1}),
        _telemetry(quality={"q" * 100_000: "great"}),
    ):
        with pytest.raises(PayloadError) as caught:
            decode_payload("telemetry", raw)
        assert len(str(caught.value)) < 300
    with pytest.raises(PayloadError) as caught:
        parse_topic("iiot/" + "t" * 100_000 + "/d/telemetry")
    assert len(str(caught.value)) < 300


def test_topic_segment_must_match_whole() -> None:
    with pytest.raises(PayloadError):
        parse_topic("iiot/alice\n/tank-1/telemetry")


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@given(st.binary(max_size=400))
def test_any_bytes_give_a_payload_or_a_payload_error(raw: bytes) -> None:
    for kind in ("telemetry", "status", "cmd", "cmd/ack", "alarm", "other"):
        with contextlib.suppress(PayloadError):
            decode_payload(kind, raw)


@given(
    value=_json_values,
    wrap=st.integers(min_value=0, max_value=2_000),
    kind=st.sampled_from(["telemetry", "status", "cmd", "cmd/ack", "alarm"]),
)
def test_any_json_gives_a_payload_or_a_payload_error(value: object, wrap: int, kind: str) -> None:
    text = json.dumps({"v": 1, "device": "tank-1", "seq": 1, "ts": 1, "metrics": {"x": value}})
    text = text.replace('"x": ', '"x": ' + "[" * wrap, 1)[:-2] + "]" * wrap + "}}"
    try:
        decode_payload(kind, text.encode())
    except PayloadError as error:
        assert len(str(error)) < 400


def test_meta_describes_metrics_and_refuses_unknown_fields() -> None:
    from iiotlab.payloads import Meta, parse_topic

    raw = (
        b'{"v":1,"device":"boiler-1","ts":1763719200123,"tags":{"temperature":'
        b'{"unit":"degC","unit_id":4408652,"eu_range":[-20,250.0]}}}'
    )
    meta = decode_payload("meta", raw)
    assert isinstance(meta, Meta)
    assert meta.tags["temperature"].eu_range == [-20.0, 250.0]
    assert decode_payload("meta", encode_payload(meta)) == meta
    assert parse_topic("iiot/alice/boiler-1/meta") == ("alice", "boiler-1", "meta")
    with pytest.raises(PayloadError, match=r"tags\.temperature\.colour"):
        decode_payload("meta", raw.replace(b'"unit":', b'"colour":"red","unit":'))
    with pytest.raises(PayloadError, match="eu_range"):
        decode_payload("meta", raw.replace(b"[-20,250.0]", b"[1]"))
