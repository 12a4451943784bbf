"""Command checks: a command reaches the plant; a forbidden one is refused."""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import Observation, ProbeRecord, Value
from iiotlab.datasheet import Datasheet, TagSpec

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext


class CommandParams(CheckParams):
    at: float = Field(default=6.0, ge=0, description="s after start when the grader sends it")
    online_within_s: float = Field(
        default=10.0, gt=0, description="how long the grader waits for status 'online' to send"
    )
    settle_s: float = Field(
        default=1.0, ge=0, description="s between status 'online' and the command at the least"
    )
    metric: str | None = Field(default=None, description="default: the first writable tag")
    value: float | bool | None = Field(default=None, description="default: mid-range")
    ack_within_s: float = Field(default=5.0, gt=0)


def writable_tag(sheet: Datasheet, name: str | None, access: str) -> TagSpec | None:
    for tag in sheet.tags:
        if (name is None and tag.access == access) or tag.name == name:
            return tag
    return None


def command_value(tag: TagSpec, value: float | bool | None, refuse: bool) -> Value:
    """The value to send: given, or mid-range (or far outside the range to be refused)."""
    if value is not None:
        return value
    if tag.modbus is not None and tag.modbus.table in ("coil", "discrete"):
        return True
    low, high = tag.range or (0.0, 100.0)
    if refuse and tag.access == "rw":
        return high + (high - low) * 10 + 1000
    return round(low + (high - low) * 0.37, 1)


async def _send(ctx: ProbeContext[CommandParams], refuse: bool) -> None:
    await ctx.sleep_until(ctx.params.at)
    tag = writable_tag(ctx.datasheet, ctx.params.metric, "r" if refuse else "rw")
    if tag is None:
        ctx.record("cmd", expected="a tag to command", saw="no such tag in the datasheet", ok=False)
        return
    # the command goes to a gateway that said it is online, settle_s after it said so: one
    # that starts slowly on a busy machine is commanded as late as it needs, up to the limit
    online_ms = await ctx.online(until_s=max(ctx.params.at, ctx.params.online_within_s))
    if online_ms is None:
        ctx.record(
            "cmd",
            expected="status 'online' before the command",
            saw=f"no status 'online' within {ctx.params.online_within_s:g} s of start",
            ok=False,
        )
        return
    wait_ms = online_ms + ctx.params.settle_s * 1000 - ctx.now_ms()
    if wait_ms > 0:
        await asyncio.sleep(wait_ms / 1000)
    value = command_value(tag, ctx.params.value, refuse)
    command_id = f"grader-{ctx.check_id}"
    payload = {"v": 1, "id": command_id, "metric": tag.name, "value": value}
    await ctx.env.publish_admin(f"iiot/{ctx.tenant}/{ctx.device}/cmd", json.dumps(payload).encode())
    ctx.record(
        "cmd",
        expected="ack",
        saw="sent",
        ok=True,
        id=command_id,
        metric=tag.name,
        value=value,
        sent_ms=ctx.now_ms(),
        online_ms=online_ms,
    )


def _sent(obs: Observation, check_id: str) -> ProbeRecord | None:
    sent = [p for p in obs.probes_of(check_id) if p.name == "cmd" and "id" in p.detail]
    return sent[0] if sent else None


def _ack(obs: Observation, command_id: str, sent_ms: int, within_s: float) -> dict[str, Any] | None:
    """The gateway's answer to the command: the contract's fields only, as evidence."""
    for message in obs.of_kind("cmd/ack"):
        data = message.json()
        if (
            isinstance(data, dict)
            and data.get("id") == command_id
            and sent_ms <= message.received_ms <= sent_ms + within_s * 1000
        ):
            ok, error = data.get("ok"), data.get("error")
            return {
                "id": command_id,
                "ok": ok if isinstance(ok, bool) else None,
                "error": error[:500] if isinstance(error, str) else None,
                "received_ms": message.received_ms,
            }
    return None


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-3)


def _not_sent(ctx: CheckContext[CommandParams]) -> CheckOutcome:
    why = "; ".join(p.saw for p in ctx.observation.probes_of(ctx.spec.id)) or "no probe ran"
    return CheckOutcome(
        0.0,
        ctx.spec.points,
        False,
        f"the grader could not send the command: {why}",
        {
            "expected": "a command sent",
            "saw": [p.saw for p in ctx.observation.probes_of(ctx.spec.id)],
            "where": "probe",
        },
    )


@check("command_write_through", params=CommandParams)
def command_write_through(ctx: CheckContext[CommandParams]) -> CheckOutcome:
    """A command on .../cmd is written to the PLC and acknowledged ok on .../cmd/ack."""
    obs = ctx.observation
    sent = _sent(obs, ctx.spec.id)
    if sent is None:
        return _not_sent(ctx)
    d = sent.detail
    ack = _ack(obs, d["id"], d["sent_ms"], ctx.params.ack_within_s)
    writes = [w for w in obs.writes if w.tag == d["metric"] and w.ts_ms >= d["sent_ms"] - 50]
    reached = [w for w in writes if w.ok and _same(w.value, d["value"])]
    parts = [
        (
            f"ack ok within {ctx.params.ack_within_s:g} s",
            1.0,
            ack is not None and ack.get("ok") is True,
        ),
        (f"the PLC received {d['metric']} = {d['value']}", 1.0, bool(reached)),
    ]
    evidence = {
        "expected": {"ack": {"id": d["id"], "ok": True}, "write": {d["metric"]: d["value"]}},
        "saw": {
            "ack": ack,
            "writes": [
                {"ts_ms": w.ts_ms, "value": w.value, "ok": w.ok, "error": w.error}
                for w in writes[:5]
            ],
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/cmd/ack and the simulator's write log",
    }
    return ctx.outcome(parts, evidence)


@check("command_refusal", params=CommandParams)
def command_refusal(ctx: CheckContext[CommandParams]) -> CheckOutcome:
    """A command to a read-only tag (or out of range) is refused with a reason, PLC untouched."""
    obs = ctx.observation
    sent = _sent(obs, ctx.spec.id)
    if sent is None:
        return _not_sent(ctx)
    d = sent.detail
    ack = _ack(obs, d["id"], d["sent_ms"], ctx.params.ack_within_s)
    reached = [
        w for w in obs.writes if w.tag == d["metric"] and w.ok and w.ts_ms >= d["sent_ms"] - 50
    ]
    refused = ack is not None and ack.get("ok") is False and bool(ack.get("error"))
    # a gateway that ignores commands writes nothing either: "not written" counts only
    # from a gateway that answered the command, so silence earns nothing
    parts = [
        ("ack ok=false with an error text", 1.0, refused),
        (
            "the PLC was not written" + ("" if ack is not None else " (no answer to the command)"),
            1.0,
            ack is not None and not reached,
        ),
    ]
    evidence = {
        "expected": {"ack": {"id": d["id"], "ok": False, "error": "<reason>"}, "write": None},
        "saw": {"ack": ack, "writes": [{"ts_ms": w.ts_ms, "value": w.value} for w in reached[:5]]},
        "where": f"iiot/{obs.tenant}/{obs.device}/cmd/ack and the simulator's write log",
    }
    return ctx.outcome(parts, evidence)


@probe("command_write_through")
async def probe_write(ctx: ProbeContext[CommandParams]) -> None:
    await _send(ctx, refuse=False)


@probe("command_refusal")
async def probe_refuse(ctx: ProbeContext[CommandParams]) -> None:
    await _send(ctx, refuse=True)
