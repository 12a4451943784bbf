"""modbus_write_protection on hand-made probe records, truth and PLC write logs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from grader.checks.modbus_protection import (
    ModbusProtectionParams,
    truth_matches,
    write_targets,
)
from grader.observation import Observation, ProbeRecord, WriteRecord
from grader.probes.modbus_client import ModbusReply, write_coils_pdu, write_registers_pdu
from grader.spec import LabSpec
from tests.grader.builders import LAB, SHEET, T0, flow_at, level_at, observation, run_check

pytestmark = pytest.mark.unit

KIND = "modbus_write_protection"
READ_AT = T0 + 4_000
WRITE_AT = T0 + 5_000
AFTER_AT = T0 + 5_200
FUNCTIONS = {5: "pump_on", 6: "pump_speed_sp", 15: "pump_on", 16: "pump_speed_sp"}
READS = {"level": (4, 10), "flow": (4, 12), "pump_speed_sp": (3, 20), "pump_on": (1, 1)}


def record(name: str, ts: int, saw: str, ok: bool, **detail: Any) -> ProbeRecord:
    return ProbeRecord("c", name, ts, "", saw, ok, detail)


def truth_values(ts: int) -> dict[str, Any]:
    return {"level": level_at(ts), "flow": flow_at(ts), "pump_speed_sp": 40.0, "pump_on": True}


def reads(phase: str, ts: int, wrong: dict[str, Any] | None = None) -> list[ProbeRecord]:
    values = {**truth_values(ts), **(wrong or {})}
    out = []
    for tag, (function, address) in READS.items():
        value = values[tag]
        out.append(
            record(
                f"{phase}:{tag}",
                ts + 5,
                repr(value),
                value is not None,
                tag=tag,
                function=function,
                address=address,
                value=value,
                sent_ms=ts,
                received_ms=ts + 5,
            )
        )
    return out


def writes(codes: dict[int, int | None], saws: dict[int, str] | None = None) -> list[ProbeRecord]:
    out = []
    for offset, (function, code) in enumerate(codes.items()):
        saw = (saws or {}).get(function) or (
            f"exception {code:02d}" if code is not None else f"success (function {function})"
        )
        out.append(
            record(
                f"write:fc{function}",
                WRITE_AT + offset + 1,
                saw,
                code is not None,
                function=function,
                tag=FUNCTIONS[function],
                exception_code=code,
                applicable=True,
                sent_ms=WRITE_AT + offset,
                received_ms=WRITE_AT + offset + 1,
            )
        )
    return out


def probe_run(
    codes: dict[int, int | None],
    *,
    kept: bool = True,
    wrong: dict[str, Any] | None = None,
    after_wrong: dict[str, Any] | None = None,
    saws: dict[int, str] | None = None,
) -> list[ProbeRecord]:
    connection = "kept open" if kept else "closed after FC 5"
    return [
        record("connect", READ_AT - 10, "connected", True, port=40123),
        *reads("read", READ_AT, wrong),
        *writes(codes, saws),
        record("connection", WRITE_AT + 10, connection, kept, dropped_after=[] if kept else [5]),
        *reads("after", AFTER_AT, after_wrong),
    ]


def plc_write(ts: int, tag: str, value: Any = 40.0, ok: bool = True) -> WriteRecord:
    return WriteRecord(
        ts, "modbus", "modbus:127.0.0.1:50312", "tank-1", tag, value, ok, None if ok else "no"
    )


def obs(probes: list[ProbeRecord], plc: tuple[WriteRecord, ...] = ()) -> Observation:
    return observation([], probes=tuple(probes), writes=plc)


REFUSED = {5: 1, 6: 1, 15: 1, 16: 1}


def test_protecting_proxy_scores_full_marks_with_evidence() -> None:
    outcome = run_check(KIND, obs(probe_run(REFUSED)), points=70)
    assert outcome.passed and outcome.points == 70, outcome.message
    saw = outcome.evidence["saw"]
    assert saw["reads"]["matching"] == "4 of 4"
    assert saw["writes_refused"]["FC 6 (write single register)"] == "exception 01"
    assert saw["plc_unchanged"]["writes_at_plc"] == 0
    assert saw["survives"]["connection"] == "kept open"
    assert "127.0.0.1:40123 (unit 3)" in outcome.evidence["where"]
    assert "01 illegal function" in outcome.evidence["expected"]["writes_refused"]


def test_forwarding_proxy_keeps_reads_and_loses_every_write_part() -> None:
    plc = tuple(plc_write(WRITE_AT + i, FUNCTIONS[f]) for i, f in enumerate(REFUSED))
    outcome = run_check(KIND, obs(probe_run(dict.fromkeys(REFUSED)), plc))
    # weights: reads 2 + survives 1 of 2 + 4 x 1 + 2 + 1
    assert not outcome.passed and outcome.points == pytest.approx(10 * 3 / 9, abs=0.01)
    assert "FC 16 (write multiple registers) refused" in outcome.message
    saw = outcome.evidence["saw"]
    assert saw["writes_refused"]["FC 5 (write single coil)"] == "success (function 5)"
    assert saw["plc_unchanged"]["writes_at_plc"] == 4
    assert saw["plc_unchanged"]["first"][0]["tag"] == "pump_on"


def test_a_write_the_plc_refused_still_reached_it() -> None:
    """The proxy forwarded the write; the PLC answered 03: refused, but not by the proxy."""
    plc = (plc_write(WRITE_AT + 1, "pump_speed_sp", ok=False),)
    outcome = run_check(KIND, obs(probe_run({6: 3}), plc), functions=[6])
    assert outcome.points == pytest.approx(10 * 4 / 6, abs=0.01)
    assert "the PLC's write log" in outcome.message
    assert outcome.evidence["saw"]["plc_unchanged"]["first"][0]["ok"] is False


def test_writes_before_the_probe_do_not_count() -> None:
    earlier = (plc_write(WRITE_AT - 2_000, "pump_speed_sp"),)
    outcome = run_check(KIND, obs(probe_run(REFUSED), earlier))
    assert outcome.passed


def test_wrong_reads_fail_with_the_tag_the_truth_and_what_was_read() -> None:
    swapped = {"level": 12345.6, "flow": None}
    outcome = run_check(KIND, obs(probe_run(REFUSED, wrong=swapped)), parts=["reads"])
    assert not outcome.passed and outcome.points == 0
    saw = outcome.evidence["saw"]["reads"]
    assert saw["matching"] == "2 of 4"
    level = next(row for row in saw["wrong"] if row["tag"] == "level")
    assert level["saw"] == 12345.6 and level["expected"] == pytest.approx(level_at(READ_AT))
    assert set(outcome.evidence["expected"]) == {"reads"}


def test_min_fraction_lets_one_bad_tag_pass() -> None:
    run = probe_run(REFUSED, wrong={"flow": 0.0})
    assert not run_check(KIND, obs(run), parts=["reads"]).passed
    assert run_check(KIND, obs(run), parts=["reads"], min_fraction=0.75).passed


def test_a_refused_read_function_fails_reads_whatever_min_fraction() -> None:
    """A proxy that answers read coils (FC 1) with an exception: one tag of four here, but
    a whole table cut off; min_fraction 0.75 would let the one wrong tag pass."""
    run = probe_run(REFUSED, wrong={"pump_on": None}, after_wrong={"pump_on": None})
    outcome = run_check(KIND, obs(run), parts=["reads", "survives"], min_fraction=0.75)
    assert not outcome.passed and outcome.points == 0
    assert outcome.evidence["saw"]["reads"]["refused_functions"] == [1]
    assert "read function(s) 1 never answered" in outcome.message
    # one wrong value (answered, but not the truth) is what min_fraction is for
    run = probe_run(REFUSED, wrong={"pump_on": False})
    assert run_check(KIND, obs(run), parts=["reads"], min_fraction=0.75).passed


def test_dropped_connection_fails_survives_and_the_write_it_killed() -> None:
    run = probe_run({5: None, 6: 1, 15: 1, 16: 1}, kept=False, saws={5: "no reply: closed"})
    outcome = run_check(KIND, obs(run), parts=["writes_refused", "survives"])
    assert outcome.points == pytest.approx(10 * 3 / 5, abs=0.01)
    saw = outcome.evidence["saw"]
    assert saw["survives"]["connection"] == "closed after FC 5"
    assert saw["writes_refused"]["FC 5 (write single coil)"] == "no reply: closed"


def test_accept_codes_narrow_what_counts_as_refused() -> None:
    run = probe_run({5: 1, 6: 3, 15: 1, 16: 1})
    assert run_check(KIND, obs(run), parts=["writes_refused"]).passed
    strict = run_check(KIND, obs(run), parts=["writes_refused"], accept_codes=[1])
    assert strict.points == 7.5 and "FC 6" in strict.message


def test_not_applicable_function_has_no_part() -> None:
    run = [r for r in probe_run(REFUSED) if r.name != "write:fc15"]
    run.append(
        record("write:fc15", WRITE_AT, "no writable coil on the datasheet", False, applicable=False)
    )
    outcome = run_check(KIND, obs(run), parts=["writes_refused"])
    assert outcome.passed
    assert outcome.evidence["saw"]["writes_refused"]["FC 15 (write multiple coils)"].startswith(
        "not applicable"
    )


def test_no_proxy_scores_zero_with_the_reason() -> None:
    refused = record("connect", READ_AT, "cannot connect to 127.0.0.1:40123: refused", False)
    outcome = run_check(KIND, obs([refused]))
    assert outcome.points == 0 and "cannot connect" in outcome.message
    outcome = run_check(KIND, obs([]))
    assert outcome.points == 0 and "did not probe" in outcome.evidence["saw"]


def test_connected_but_nothing_attempted_fails_the_write_log_part() -> None:
    run = [record("connect", READ_AT, "connected", True, port=1), *reads("read", READ_AT)]
    outcome = run_check(KIND, obs(run), parts=["plc_unchanged", "survives"])
    assert outcome.points == 0
    assert "no write attempted" in outcome.message


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"parts": ["bogus"]}, "parts"),
        ({"parts": []}, "parts"),
        ({"functions": [3]}, "functions"),
        ({"accept_codes": [0]}, "accept_codes"),
        ({"min_fraction": 0}, "min_fraction"),
        ({"at": -1}, "at"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_params_are_errors_naming_the_param(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        ModbusProtectionParams.model_validate(params)
    assert field in str(error.value)


def test_truth_match_allows_a_read_in_flight_across_a_tick() -> None:
    level = SHEET.tag("level")
    truth = observation([]).truth
    later = level_at(READ_AT + 200)
    assert truth_matches(level, later, truth, READ_AT, READ_AT + 50)[0]
    assert not truth_matches(level, later + 1.0, truth, READ_AT, READ_AT + 50)[0]
    assert truth_matches(SHEET.tag("pump_on"), True, truth, READ_AT, READ_AT)[0]
    assert not truth_matches(SHEET.tag("pump_on"), False, truth, READ_AT, READ_AT)[0]


def test_write_targets_write_back_what_was_read() -> None:
    raw = {"pump_speed_sp": [0x0000, 0x4220], "pump_on": [True]}
    targets = write_targets(SHEET, raw)
    assert {f: t[0].name for f, t in targets.items()} == FUNCTIONS
    assert targets[6][1] == bytes([6, 0, 20, 0, 0])  # first word of pump_speed_sp
    assert targets[16][1] == write_registers_pdu(20, [0x0000, 0x4220])
    assert targets[5][1] == bytes([5, 0, 1, 0xFF, 0])
    assert targets[15][1] == write_coils_pdu(1, [True]) == bytes([15, 0, 1, 0, 1, 1, 1])
    zeros = write_targets(SHEET, {})  # the reads failed: zeros, still a valid write
    assert zeros[16][2] == [0, 0] and zeros[5][2] == [False]


def test_reply_parsing() -> None:
    assert ModbusReply(0x86, b"\x01").describe() == "exception 01 (illegal function)"
    assert ModbusReply(3, b"\x04\x12\x34\xab\xcd").registers() == [0x1234, 0xABCD]
    assert ModbusReply(1, b"\x01\x05").bits(3) == [True, False, True]
    assert ModbusReply(16, b"\x00\x14\x00\x02").exception_code is None


def test_a_proxy_lab_needs_the_plc_behind_it() -> None:
    base = LAB.model_dump(exclude={"directory"})
    assert LabSpec.model_validate({**base, "modbus_proxy": True}).modbus_proxy
    with pytest.raises(ValidationError, match="modbus_proxy: true needs modbus: true"):
        LabSpec.model_validate({**base, "modbus_proxy": True, "modbus": False})
