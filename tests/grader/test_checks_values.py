"""values_match_truth on hand-made observations, including the diagnosis of mistakes."""

from __future__ import annotations

import pytest

from grader.observation import ObservedMessage
from iiotlab.registers import RegisterFormat, decode, encode
from tests.grader.builders import (
    SHEET,
    T0,
    flow_at,
    good_stream,
    observation,
    run_check,
    telemetry,
)

pytestmark = pytest.mark.unit


def swapped(ts: int, value: float) -> float:
    registers = encode(value, RegisterFormat("float32", "CDAB"))
    return float(decode(registers, RegisterFormat("float32", "ABCD")))


def test_correct_gateway_gets_full_points() -> None:
    outcome = run_check("values_match_truth", observation(good_stream()))
    assert outcome.passed and outcome.points == outcome.max_points == 10
    assert outcome.evidence["saw"]["level"]["matching"] == 1.0


def test_word_order_swapped_on_one_tag_is_diagnosed() -> None:
    obs = observation(good_stream(transform={"level": swapped}))
    outcome = run_check("values_match_truth", obs, points=8)
    assert not outcome.passed
    assert outcome.points == 6.0  # 3 of 4 tags right
    entry = outcome.evidence["saw"]["level"]
    assert entry["diagnosis"] == "word order: decoded as ABCD, the datasheet says CDAB"
    assert entry["series"]["ts"] and len(entry["series"]["truth"]) == len(entry["series"]["sent"])
    assert "flow" not in [k for k, v in outcome.evidence["saw"].items() if "diagnosis" in v]


@pytest.mark.parametrize(
    ("function", "diagnosis"),
    [
        (lambda ts, v: round(v * 10), "scale and offset not applied (raw register value sent)"),
        (lambda ts, v: v / 0.01, "divided by the scale 0.1 instead of multiplying"),
    ],
)
def test_scale_mistakes_are_diagnosed(function: object, diagnosis: str) -> None:
    obs = observation(good_stream(transform={"flow": function}))
    outcome = run_check("values_match_truth", obs)
    assert outcome.evidence["saw"]["flow"]["diagnosis"] == diagnosis
    assert outcome.points == 7.5


def test_wrong_address_and_stale_are_diagnosed() -> None:
    def shifted(ts: int, value: float) -> float:
        # what reading level one register late gives: low word of level + high word of flow
        level = encode(value, RegisterFormat("float32", "CDAB"))
        from tests.grader.builders import flow_at

        flow = encode(flow_at(ts), RegisterFormat("int32", "ABCD", 0.1))
        return float(decode([level[1], flow[0]], RegisterFormat("float32", "CDAB")))

    outcome = run_check(
        "values_match_truth", observation(good_stream(transform={"level": shifted}))
    )
    assert outcome.evidence["saw"]["level"]["diagnosis"].startswith(
        "wrong address: read input 11 instead of 10"
    )
    frozen = run_check(
        "values_match_truth", observation(good_stream(transform={"level": lambda ts, v: 1.5}))
    )
    assert frozen.evidence["saw"]["level"]["diagnosis"].startswith("stale")


def test_lagging_timestamps_are_diagnosed() -> None:
    obs = observation(
        good_stream(
            transform={
                "level": lambda ts, v: round(
                    1.0 + ((ts - 2000 - 1_763_719_200_000) % 20_000) / 10_000, 3
                )
            }
        )
    )
    outcome = run_check("values_match_truth", obs)
    assert "lag the plant by about 2 s" in outcome.evidence["saw"]["level"]["diagnosis"]


def test_missing_metric_and_tolerance_override() -> None:
    stream = [m for m in good_stream()]
    no_flow = []
    for message in stream:
        data = message.json()
        data["metrics"].pop("flow")
        no_flow.append(telemetry(data["seq"], data["ts"], data["metrics"]))
    outcome = run_check("values_match_truth", observation(no_flow))
    assert outcome.evidence["saw"]["flow"]["diagnosis"] == "never published"
    off = observation(good_stream(transform={"level": lambda ts, v: v + 0.2}))
    assert not run_check("values_match_truth", off).passed
    assert run_check("values_match_truth", off, tolerance={"level": 0.3}).passed


def test_replayed_and_garbage_messages_do_not_crash() -> None:
    junk = [ObservedMessage("iiot/alice/tank-1/telemetry", b"\xff not json", 1), *good_stream()]
    assert run_check("values_match_truth", observation(junk)).passed
    assert SHEET.tag("level").modbus is not None


def test_word_order_of_a_scaled_int_is_diagnosed_despite_noise() -> None:
    """A swapped int32 amplifies a one-count difference 65536 times; the diagnosis undoes it."""
    as_abcd = RegisterFormat("int32", "ABCD", 0.1)
    as_cdab = RegisterFormat("int32", "CDAB", 0.1)

    def swapped_and_read_later(ts: int, value: float) -> float:
        # the gateway read the register a moment after ts, when flow was one count higher
        return float(decode(encode(value + 0.1, as_abcd), as_cdab))

    obs = observation(good_stream(transform={"flow": swapped_and_read_later}))
    outcome = run_check("values_match_truth", obs)
    assert not outcome.passed
    diagnosis = outcome.evidence["saw"]["flow"]["diagnosis"]
    assert diagnosis == "word order: decoded as CDAB, the datasheet says ABCD"


def _early_stamps(*, replayed: bool, value_offset: float = 0.0) -> list[ObservedMessage]:
    """Each read stamped 700 ms before the plant served its value (a starved plant answers
    late), the message arriving 100 ms after: flow steps every second, so the stamp's
    +-600 ms never shows the value sent."""
    out = []
    for seq, second in enumerate(range(2, 28)):
        served = T0 + second * 1000 + 10
        value = flow_at(served) + value_offset
        out.append(
            telemetry(
                seq,
                served - 710,
                {"flow": value},
                received=served + 100,
                replayed=replayed,
            )
        )
    return out


def test_a_value_served_after_its_stamp_matches_up_to_the_message_arrival() -> None:
    live = run_check(
        "values_match_truth", observation(_early_stamps(replayed=False)), tags=["flow"]
    )
    assert live.passed, live.evidence
    # the same samples from the buffer: their arrival says nothing about when they were read
    replayed = run_check(
        "values_match_truth", observation(_early_stamps(replayed=True)), tags=["flow"]
    )
    assert not replayed.passed
    # a wrong value arriving late is still wrong
    wrong = run_check(
        "values_match_truth",
        observation(_early_stamps(replayed=False, value_offset=1.0)),
        tags=["flow"],
    )
    assert not wrong.passed
    entry = wrong.evidence["saw"]["flow"]
    assert entry["saw"] != entry["expected"] and entry["where_ts"] == T0 + 2000 + 10 - 710


def test_a_heartbeat_repeating_the_previous_read_matches_it() -> None:
    """A heartbeat stamped "now" carries the value of the gateway's previous read, 1.6 s
    back and a flow step ago: the read happened after the previous message's read."""
    messages = []
    for seq, second in enumerate(range(2, 26, 2)):
        read = T0 + second * 1000 + 100
        messages.append(telemetry(2 * seq, read, {"flow": flow_at(read)}, received=read + 50))
        beat = read + 1600
        messages.append(telemetry(2 * seq + 1, beat, {"flow": flow_at(read)}, received=beat + 50))
    outcome = run_check("values_match_truth", observation(messages), tags=["flow"])
    assert outcome.passed, outcome.evidence
    # values older than the gateway's previous message are stale, not read late
    stale = [
        telemetry(seq, ts, {"flow": flow_at(ts - 2500)}, received=ts + 50)
        for seq, ts in enumerate(range(T0 + 3100, T0 + 27_000, 1000))
    ]
    outcome = run_check("values_match_truth", observation(stale), tags=["flow"])
    assert not outcome.passed
