"""values_match_truth diagnoses: an order mistake named as one, near-zero matches explain
nothing, ties reported as ties (on a datasheet laid out like the reproduced case)."""

from __future__ import annotations

from typing import Any

import pytest

from grader.checks.registry import CheckContext, CheckOutcome, default_registry
from grader.checks.values import diagnose
from grader.observation import Observation, ObservedMessage, TruthSeries
from grader.spec import Bilingual, CheckSpec
from iiotlab.datasheet import Datasheet
from iiotlab.registers import RegisterFormat, decode, encode
from tests.grader.builders import DEVICE, LAB, T0, TENANT, telemetry

pytestmark = pytest.mark.unit


def float_tag(name: str, address: int, order: str, top: float = 5.0) -> dict[str, Any]:
    return {
        "name": name,
        "access": "r",
        "range": [0, top],
        "tolerance": 0.01,
        "modbus": {"table": "holding", "address": address, "type": "float32", "word_order": order},
    }


SHEET = Datasheet.model_validate(
    {
        "plant": "tank",
        "lab": "edge-01",
        "student": TENANT,
        "device": DEVICE,
        "modbus": {"unit_id": 1},
        "opcua": {"namespace_uri": "urn:test"},
        "tags": [
            float_tag("speed_sp", 5000, "DCBA", top=100.0),
            {  # right after speed_sp: its high word is 0, so a shifted read is tiny too
                "name": "count",
                "access": "r",
                "range": [0, 100_000],
                "tolerance": 0.5,
                "modbus": {"table": "holding", "address": 5002, "type": "int32"},
            },
            float_tag("level", 5006, "ABCD"),
            float_tag("level_b", 5010, "ABCD"),  # a redundant transmitter: reads as level
            float_tag("temperature", 5020, "ABCD", top=100.0),
        ],
    }
)
DCBA, ABCD = RegisterFormat("float32", "DCBA"), RegisterFormat("float32", "ABCD")


def level_at(ts: int) -> float:
    return round(1.0 + ((ts - T0) % 20_000) / 10_000, 3)


def speed_at(ts: int) -> float:
    """A setpoint stepping 40, 42.5 ... 50: few mantissa bits, so reversed bytes are tiny."""
    return 40.0 + 2.5 * ((ts - T0) // 3000 % 5)


def truth(seconds: int = 30) -> TruthSeries:
    samples = []
    for ts in range(T0 - 2000, T0 + seconds * 1000, 100):
        level = level_at(ts)
        values = {
            "speed_sp": speed_at(ts),
            "count": 1234,
            "level": level,
            "level_b": level,
            "temperature": 21.5,
        }
        samples.append((ts, values))
    return TruthSeries(tuple(samples))


def stream(sent: dict[str, Any]) -> list[ObservedMessage]:
    out = []
    for seq, ts in enumerate(range(T0 + 500, T0 + 30_000, 1000), start=1):
        metrics = {
            "speed_sp": speed_at(ts),
            "level": level_at(ts),
            "count": 1234,
            "level_b": level_at(ts),
            "temperature": 21.5,
        }
        metrics.update({name: function(ts) for name, function in sent.items()})
        out.append(telemetry(seq, ts, metrics))
    return out


def grade(messages: list[ObservedMessage]) -> CheckOutcome:
    obs = Observation(TENANT, DEVICE, T0, T0 + 30_000, tuple(messages), truth(), startup_s=2.0)
    kind = default_registry().get("values_match_truth")
    assert kind is not None
    spec = CheckSpec(
        id="values", kind=kind.name, points=4, params={}, hint=Bilingual(en="h", zh="h")
    )
    return kind.evaluate(CheckContext(LAB, spec, kind.params.model_validate({}), SHEET, obs))


def read_as_abcd(ts: int) -> float:
    """The most common mistake: the DCBA float decoded as plain big-endian."""
    return float(decode(encode(speed_at(ts), DCBA), ABCD))


def test_dcba_read_as_abcd_is_diagnosed_as_word_order_not_address() -> None:
    assert 1e-42 < read_as_abcd(T0 + 500) < 1e-40  # denormals, as reproduced
    outcome = grade(stream({"speed_sp": read_as_abcd}))
    entry = outcome.evidence["saw"]["speed_sp"]
    assert entry["diagnosis"] == "word order: decoded as ABCD, the datasheet says DCBA"
    assert [c["mistake"] for c in entry["diagnosis_candidates"]] == [entry["diagnosis"]]
    assert outcome.points == 3.2  # 4 of 5 tags right


def test_a_near_zero_series_is_not_explained_by_an_address_hypothesis() -> None:
    def denormal(ts: int) -> float:  # tiny values no mistake of the catalogue produces
        return 1.5e-41 * (1 + (ts // 1000) % 3)

    entry = grade(stream({"speed_sp": denormal})).evidence["saw"]["speed_sp"]
    assert not entry["diagnosis"].startswith("wrong address"), entry["diagnosis"]
    assert entry["diagnosis"].startswith("no known mistake")
    assert entry["diagnosis_candidates"] == []
    samples = [(ts, denormal(ts)) for ts in range(T0 + 500, T0 + 30_000, 1000)]
    assert diagnose(SHEET, SHEET.tag("speed_sp"), samples, truth(), 0.01, 0.9).candidates == ()


def test_ties_are_reported_as_ties() -> None:
    outcome = grade(stream({"temperature": level_at}))
    entry = outcome.evidence["saw"]["temperature"]
    named = [c["mistake"] for c in entry["diagnosis_candidates"]]
    assert named == [
        "wrong tag: the values are those of 'level'",
        "wrong tag: the values are those of 'level_b'",
    ]
    assert entry["diagnosis"] == (
        "wrong tag: the values are those of 'level' — or, explaining the values equally "
        "well: wrong tag: the values are those of 'level_b'"
    )
