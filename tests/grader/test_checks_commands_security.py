"""Command checks and security checks on hand-made observations and probe records."""

from __future__ import annotations

import json

import pytest

from grader.observation import ObservedMessage, OpcuaSession, ProbeRecord, WriteRecord
from tests.grader.builders import T0, good_stream, observation, run_check

pytestmark = pytest.mark.unit

SENT = T0 + 5000


def sent(metric: str, value: object) -> ProbeRecord:
    return ProbeRecord(
        "c",
        "cmd",
        SENT,
        "ack",
        "sent",
        True,
        {"id": "grader-c", "metric": metric, "value": value, "sent_ms": SENT},
    )


def ack(ok: bool, error: str | None = None, delay: int = 300) -> ObservedMessage:
    payload = {"v": 1, "id": "grader-c", "ok": ok, "error": error}
    return ObservedMessage("iiot/alice/tank-1/cmd/ack", json.dumps(payload).encode(), SENT + delay)


def write(tag: str, value: object, ok: bool = True) -> WriteRecord:
    return WriteRecord(
        SENT + 100, "modbus", "modbus:127.0.0.1:5555", "tank-1", tag, value, ok, None
    )  # type: ignore[arg-type]


def test_write_through() -> None:
    obs = observation(
        [ack(True)], probes=(sent("pump_speed_sp", 42.5),), writes=(write("pump_speed_sp", 42.5),)
    )
    assert run_check("command_write_through", obs).passed
    no_write = observation([ack(True)], probes=(sent("pump_speed_sp", 42.5),))
    outcome = run_check("command_write_through", no_write)
    assert outcome.points == 5 and "PLC received" in outcome.message
    late = observation(
        [ack(True, delay=9000)],
        probes=(sent("pump_speed_sp", 42.5),),
        writes=(write("pump_speed_sp", 42.5),),
    )
    assert run_check("command_write_through", late, ack_within_s=5).points == 5
    never = run_check("command_write_through", observation([]))
    assert never.points == 0 and "could not send" in never.message


def test_refusal() -> None:
    good = observation([ack(False, "level is read-only")], probes=(sent("level", 1.0),))
    assert run_check("command_refusal", good).passed
    obeyed = observation([ack(True)], probes=(sent("level", 1.0),), writes=(write("level", 1.0),))
    assert run_check("command_refusal", obeyed).points == 0
    silent = observation([ack(False)], probes=(sent("level", 1.0),))
    assert run_check("command_refusal", silent).points == 5


def attack(name: str, ok: bool) -> ProbeRecord:
    return ProbeRecord("c", name, T0, "refused", "refused" if ok else "ACCEPTED", ok)


NAMES = (
    "anonymous",
    "wrong_password",
    "cross_tenant_read",
    "cross_tenant_write",
    "plaintext_closed",
)


def test_broker_security_parts() -> None:
    served = good_stream(5)  # the gateway published through the broker
    hardened = observation(served, probes=tuple(attack(n, True) for n in NAMES))
    assert run_check("broker_security", hardened).passed
    anonymous = observation(served, probes=tuple(attack(n, n != "anonymous") for n in NAMES))
    outcome = run_check("broker_security", anonymous)
    assert outcome.points == 8 and outcome.evidence["saw"]["anonymous"] == "ACCEPTED"
    no_tls = observation(served, probes=tuple(attack(n, True) for n in NAMES[:4]))
    assert run_check("broker_security", no_tls, require_tls=False).passed
    assert run_check("broker_security", no_tls).points == 8  # plaintext not attempted


def test_a_broker_that_served_no_gateway_earns_nothing() -> None:
    """Refusing every attacker proves nothing when the gateway got nowhere either."""
    unused = observation([], probes=tuple(attack(n, True) for n in NAMES))
    outcome = run_check("broker_security", unused)
    assert outcome.points == 0 and outcome.evidence["gateway_served"] is False
    assert "never published through the broker" in outcome.message


def session(policy: str, mode: str, user: str | None = "maint") -> OpcuaSession:
    return OpcuaSession(T0, "127.0.0.1:4000", policy, mode, user)


def test_opcua_security_from_session_log() -> None:
    strong = observation([], opcua_sessions=(session("Basic256Sha256", "SignAndEncrypt"),))
    assert run_check("opcua_security_negotiated", strong, require_user=True).passed
    plain = observation(
        [],
        opcua_sessions=(session("Basic256Sha256", "SignAndEncrypt"), session("None", "None", None)),
    )
    outcome = run_check("opcua_security_negotiated", plain, points=9)
    assert outcome.points == 3 and outcome.evidence["saw"][1]["policy"] == "None"
    assert run_check("opcua_security_negotiated", observation([])).points == 0
