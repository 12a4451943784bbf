"""Command checks and security checks on hand-made observations and probe records."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from grader.observation import ObservedMessage, OpcuaSession, ProbeRecord, WriteRecord
from tests.grader.builders import (
    LAB,
    SHEET,
    T0,
    TENANT,
    good_stream,
    observation,
    run_check,
    status,
)

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


class SlowGateway:
    """The grader's side of a run whose gateway says 'online' only after `online_after_s`."""

    def __init__(self, online_after_s: float | None) -> None:
        self.messages: list[ObservedMessage] = []
        self.published: list[tuple[float, bytes]] = []
        self.started = time.monotonic()
        if online_after_s is not None:
            asyncio.get_running_loop().call_later(
                online_after_s,
                lambda: self.messages.append(status("online", int(time.time() * 1000))),
            )

    async def publish_admin(self, topic: str, payload: bytes) -> None:
        self.published.append((time.monotonic() - self.started, payload))


async def send_command(env: SlowGateway, **params: Any) -> list[ProbeRecord]:
    from grader.checks.commands import CommandParams, probe_write
    from grader.probes.context import ProbeContext

    records: list[ProbeRecord] = []
    context: ProbeContext[Any] = ProbeContext(
        "c",
        CommandParams.model_validate({"metric": "pump_speed_sp", **params}),
        LAB,
        SHEET,
        TENANT,
        SHEET.device or "tank-1",
        env,  # type: ignore[arg-type]
        env.started,
        records,
    )
    await probe_write(context)
    return records


async def test_the_command_waits_for_a_gateway_that_starts_late() -> None:
    env = SlowGateway(online_after_s=0.6)
    records = await send_command(env, at=0.1, settle_s=0.3, online_within_s=5)
    assert len(env.published) == 1 and records[0].ok
    sent_after_s = env.published[0][0]
    assert sent_after_s >= 0.6 + 0.3 - 0.05  # online, then settle_s
    assert records[0].detail["online_ms"] <= records[0].detail["sent_ms"] - 250


async def test_no_online_status_sends_no_command_and_says_why() -> None:
    env = SlowGateway(online_after_s=None)
    records = await send_command(env, at=0, online_within_s=0.3)
    assert env.published == [] and not records[0].ok
    obs = observation([], probes=tuple(records))
    outcome = run_check("command_write_through", obs)
    assert outcome.points == 0 and "no status 'online' within 0.3 s" in outcome.message


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
