"""sec-04: intrusion_detection verdicts from built observations, the tap's schedule, and
the tap itself (a real TCP proxy and feed) in front of a small Modbus responder."""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from typing import Any

from grader.modbus_tap import ATTACK_TYPES, ModbusTap, describe_frame, tap_schedule
from grader.observation import ObservedMessage, ProbeRecord
from grader.probes.modbus_client import read_pdu, write_single_pdu
from tests.grader.builders import T0, TENANT, observation, run_check

ATTACKERS = {kind: f"127.0.0.{100 + i}" for i, kind in enumerate(ATTACK_TYPES)}
STARTS = {kind: T0 + 6000 + 3000 * i for i, kind in enumerate(ATTACK_TYPES)}


def attacks() -> list[ProbeRecord]:
    records = [
        ProbeRecord(
            "c",
            f"attack-{i}",
            STARTS[kind] + 1500,
            "alert",
            "n requests",
            True,
            {
                "type": kind,
                "client": ATTACKERS[kind],
                "start_ms": STARTS[kind],
                "end_ms": STARTS[kind] + 1000,
            },
        )
        for i, kind in enumerate(ATTACK_TYPES)
    ]
    legit = {"writes": [{"ts": T0 + 4500, "client": "127.0.0.60", "address": 3003}]}
    return [*records, ProbeRecord("c", "legit-writes", T0 + 20000, "no alert", "1", True, legit)]


def alert(kind: str, client: str, received: int) -> ObservedMessage:
    payload = json.dumps({"ts": received, "type": kind, "client": client}).encode()
    return ObservedMessage(f"iiot/{TENANT}/ids/alert", payload, received)


def grade(messages: list[ObservedMessage], **params: Any) -> Any:
    obs = observation(messages, probes=tuple(attacks()))
    return run_check("intrusion_detection", obs, **params)


ALL = ["detections", "timeliness", "false_positives"]


def test_a_prompt_exact_detector_gets_everything() -> None:
    messages = [alert(k, ATTACKERS[k], STARTS[k] + 300) for k in ATTACK_TYPES]
    outcome = grade(messages, parts=ALL)
    assert outcome.passed
    assert outcome.evidence["saw"]["unit_scan"]["time_to_detect_s"] == 0.3


def test_late_alerts_count_as_detections_but_not_in_time() -> None:
    messages = [alert(k, ATTACKERS[k], T0 + 24000) for k in ATTACK_TYPES]
    assert grade(messages, parts=["detections"]).passed
    assert grade(messages, parts=["timeliness"], max_delay_s=3).points == 0
    assert grade(messages, parts=["false_positives"]).passed


def test_wrong_type_wrong_client_or_too_early_do_not_match() -> None:
    kind = "address_scan"
    for wrong in (
        alert("unit_scan", ATTACKERS[kind], STARTS[kind] + 200),  # wrong type
        alert(kind, "127.0.0.60", STARTS[kind] + 200),  # the engineering host
        alert(kind, ATTACKERS[kind], STARTS[kind] - 200),  # before the attack
    ):
        others = [alert(k, ATTACKERS[k], STARTS[k] + 300) for k in ATTACK_TYPES if k != kind]
        outcome = grade([*others, wrong], parts=ALL, points=12)
        assert not outcome.passed
        assert outcome.evidence["saw"][kind]["first_alert_ms"] is None
        assert len(outcome.evidence["false_alerts"]) == 1


def test_garbled_alerts_and_a_missing_run_fail_false_positives() -> None:
    messages = [alert(k, ATTACKERS[k], STARTS[k] + 300) for k in ATTACK_TYPES]
    garbled = ObservedMessage(f"iiot/{TENANT}/ids/alert", b"intruder!", T0 + 9000)
    assert not grade([*messages, garbled], parts=["false_positives"]).passed
    nested = ObservedMessage(f"iiot/{TENANT}/ids/alert", b"[" * 100_000, T0 + 9000)
    assert not grade([*messages, nested], parts=["false_positives"]).passed  # no RecursionError
    silent = run_check("intrusion_detection", observation([]), parts=["false_positives"])
    assert silent.points == 0  # no traffic played: nothing proves the detector stays quiet


def test_the_schedule_is_per_student_and_repeatable() -> None:
    one, again, other = tap_schedule(1), tap_schedule(1), tap_schedule(2)
    assert one == again and one != other
    assert sorted(e.type for e in one.attacks) == sorted(ATTACK_TYPES)
    hosts = {one.hmi, one.engineering, *(e.client for e in one.attacks)}
    assert len(hosts) == 6  # every machine its own address
    starts = [e.at_s for e in one.attacks]
    assert all(b - a > 2 for a, b in itertools.pairwise(starts))


def test_describe_frame() -> None:
    assert describe_frame(read_pdu(3, 3003, 2), True) == {"fc": 3, "address": 3003, "quantity": 2}
    assert describe_frame(write_single_pdu(6, 10, 7), True) == {"fc": 6, "address": 10, "value": 7}
    assert describe_frame(bytes([0x83, 0x02]), False) == {"fc": 3, "exception": 2}


async def _responder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A PLC that answers every request of unit 7 with exception 02, others not at all."""
    try:
        while True:
            header = await reader.readexactly(7)
            tid, _p, length, unit = struct.unpack(">HHHB", header)
            pdu = await reader.readexactly(length - 1)
            if unit == 7:
                writer.write(struct.pack(">HHHBBB", tid, 0, 3, unit, pdu[0] | 0x80, 2))
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def test_the_tap_forwards_and_mirrors_every_frame_with_the_source_address() -> None:
    async def scenario() -> list[dict[str, Any]]:
        plc = await asyncio.start_server(_responder, "127.0.0.1", 0)
        port = plc.sockets[0].getsockname()[1]
        async with ModbusTap("127.0.0.1", port, 7, tap_schedule(3)) as tap:
            client = tap._bound("127.0.0.77", 1.0)
            reply = await client.ask(read_pdu(3, 40, 1))
            await client.close()
            assert reply.startswith("exception 02")
            # a late reader gets the backlog: the inventory and both frames
            reader, writer = await asyncio.open_connection("127.0.0.1", tap.feed_port)
            lines = [json.loads(await reader.readline()) for _ in range(3)]
            writer.close()
        plc.close()
        return lines

    inventory, request, response = asyncio.run(scenario())
    assert inventory["type"] == "inventory" and inventory["plc"]["unit"] == 7
    assert {h["role"] for h in inventory["hosts"]} == {"hmi", "engineering"}
    assert request["client"] == "127.0.0.77" and request["dir"] == "request"
    assert (request["fc"], request["address"], request["unit"]) == (3, 40, 7)
    assert response["dir"] == "response" and response["exception"] == 2
