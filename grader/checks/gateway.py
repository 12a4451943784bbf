"""Checks on the gateway's MQTT presence: online/Last Will, contract, deadband/heartbeat."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import Observation, ObservedMessage, TelemetryRecord, status_state
from iiotlab.errors import PayloadError
from iiotlab.payloads import Telemetry, decode_payload, parse_topic

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

GRADER_KINDS = ("cmd",)  # published by the grader itself, not graded


class OnlineParams(CheckParams):
    online_within_s: float = Field(default=10.0, gt=0)
    will_within_s: float = Field(default=10.0, gt=0, description="offline after a kill")
    retained_probe_at: float = Field(
        default=4.0, ge=0, description="s after start: first look for the retained status"
    )
    retained_wait_s: float = Field(default=3.0, gt=0, description="per fresh subscription")


@check("gateway_online", params=OnlineParams)
def gateway_online(ctx: CheckContext[OnlineParams]) -> CheckOutcome:
    """Status `online` retained; the Last Will says `offline` when the grader kills it."""
    obs, params = ctx.observation, ctx.params
    statuses = obs.of_kind("status")
    online = [m for m in statuses if status_state(m) == "online"]
    first_ms = online[0].received_ms if online else None
    online_ok = first_ms is not None and first_ms - obs.started_ms <= params.online_within_s * 1000
    retained = [p for p in obs.probes_of(ctx.spec.id) if p.name == "retained_status"]
    retained_ok = bool(retained) and all(p.ok for p in retained)
    parts: list[tuple[str, float, bool]] = [
        (f"status 'online' within {params.online_within_s:g} s of start", 1, online_ok),
        ("status is retained (a late subscriber gets 'online')", 1, retained_ok),
    ]
    kills: list[dict[str, Any]] = []
    for kill in obs.actions_named("gateway_kill"):
        back = [m.received_ms for m in online if m.received_ms >= kill.ended_ms]
        # the Will is published while the gateway is dead: an 'offline' once it is back
        # online (its own goodbye when the run ends, say) is not the Last Will
        until = kill.started_ms + params.will_within_s * 1000
        if back:
            until = min(until, back[0])
        offline = [
            m.received_ms
            for m in statuses
            if status_state(m) == "offline" and kill.started_ms <= m.received_ms <= until
        ]
        kills.append(
            {
                "killed_ms": kill.started_ms,
                "offline_ms": offline[0] if offline else None,
                "restarted_ms": kill.ended_ms,
                "online_again_ms": back[0] if back else None,
            }
        )
        parts.append(
            ("Last Will 'offline' published when the gateway was killed", 1, bool(offline))
        )
        parts.append(("status 'online' again after the restart", 1, bool(back)))
    # practice mode (--gateway-running): the grader cannot kill the student's own gateway,
    # so a skipped kill adds no Last Will parts: what was not played costs no points
    skipped = [
        {"action": "gateway_kill", "at_s": a.detail.get("at_s"), "why": a.detail.get("skipped")}
        for a in obs.actions_named("gateway_kill_skipped")
    ]
    evidence = {
        "expected": "retained status online at start; offline (Last Will) after each kill",
        "saw": [{"state": status_state(m), "received_ms": m.received_ms} for m in statuses][:20],
        "where": f"iiot/{obs.tenant}/{obs.device}/status",
        "first_online_ms": first_ms,
        "retained_probe": [{"ok": p.ok, "saw": p.saw} for p in retained],
        "kills": kills,
        "skipped": skipped,
    }
    return ctx.outcome(parts, evidence)


@probe("gateway_online")
async def probe_retained_status(ctx: ProbeContext[OnlineParams]) -> None:
    """A fresh subscriber gets a retained 'online', from the first look until the deadline.

    The deadline is the later of the first look and `online_within_s`, plus one wait: a
    gateway that comes online late but inside the allowed time still has its status judged.
    """
    params = ctx.params
    await ctx.sleep_until(params.retained_probe_at)
    topic = f"iiot/{ctx.tenant}/{ctx.device}/status"
    until_s = max(params.retained_probe_at, params.online_within_s) + params.retained_wait_s
    saw, attempts = await ctx.retained(
        topic,
        until_s=until_s,
        wait_s=params.retained_wait_s,
        accept=lambda m: status_state(m) == "online",
    )
    ok = saw is not None and saw.retain and status_state(saw) == "online"
    ctx.record(
        "retained_status",
        expected="a retained status 'online' for a new subscriber",
        saw="nothing retained" if saw is None else f"retain={saw.retain} state={status_state(saw)}",
        ok=ok,
        subscriptions=attempts,
    )


class ConformanceParams(CheckParams):
    max_future_ms: int = Field(default=5000, ge=0)
    max_examples: int = Field(default=5, ge=1)


def _violation(obs: Observation, message: ObservedMessage, max_future_ms: int) -> str | None:
    try:
        _, device, kind = parse_topic(message.topic)
        payload = decode_payload(kind, message.payload)
    except PayloadError as exc:
        return str(exc)
    except Exception as exc:  # hostile input must be the sender's violation, never a crash
        return f"payload could not be decoded ({type(exc).__name__})"
    if isinstance(payload, Telemetry) and payload.device != device:
        return f"payload device {payload.device!r} differs from the topic's {device!r}"
    ts = getattr(payload, "ts", None)
    if isinstance(ts, int):
        if ts < 10**12:
            return f"ts {ts} is not epoch milliseconds (seconds?)"
        if ts > message.received_ms + max_future_ms:
            return f"ts {ts} is {ts - message.received_ms} ms in the future"
    return None


@check("contract_conformance", params=ConformanceParams)
def contract_conformance(ctx: CheckContext[ConformanceParams]) -> CheckOutcome:
    """Every message the gateway publishes follows MQTT contract v1."""
    obs = ctx.observation
    graded = [m for m in obs.messages if m.kind not in GRADER_KINDS]
    bad: list[dict[str, Any]] = []
    for message in graded:
        reason = _violation(obs, message, ctx.params.max_future_ms)
        if reason is not None:
            bad.append(
                {
                    "topic": message.topic,
                    "received_ms": message.received_ms,
                    "reason": reason,
                    "payload": message.payload[:200].decode("utf-8", "replace"),
                }
            )
    telemetry = [m for m in graded if m.kind == "telemetry"]
    parts = [
        ("the gateway published telemetry", 1.0, bool(telemetry)),
        (f"{len(bad)} of {len(graded)} messages break contract v1", 3.0, bool(graded) and not bad),
    ]
    evidence = {
        "expected": "every payload valid JSON per MQTT contract v1 (docs/contract.md)",
        "saw": bad[: ctx.params.max_examples],
        "where": f"iiot/{obs.tenant}/#",
        "messages": len(graded),
        "violations": len(bad),
    }
    return ctx.outcome(parts, evidence)


class HeartbeatParams(CheckParams):
    heartbeat_s: float = Field(default=5.0, gt=0)
    slack_s: float = Field(default=2.5, ge=0)
    deadband: dict[str, float] = Field(default_factory=dict, description="tag -> absolute")
    max_rate_hz: float = Field(default=5.0, gt=0)
    outage_margin_s: float = Field(default=5.0, ge=0, description="ignored after each outage")


def _quiet_windows(obs: Observation, margin_ms: int) -> list[tuple[int, int]]:
    """Windows where silence is expected: outages, kills, plus a recovery margin.

    A step the grader skipped (`gateway_kill_skipped` in practice mode) silenced nothing.
    """
    return [
        (a.started_ms, a.ended_ms + margin_ms)
        for a in obs.actions
        if a.action != "plant_event" and not a.action.endswith("_skipped")
    ]


def _live_telemetry(obs: Observation) -> list[TelemetryRecord]:
    """Live (not replayed) telemetry after start-up, in arrival order."""
    live = [r for r in obs.telemetry if not r.replayed and r.received_ms >= obs.steady_from_ms]
    return sorted(live, key=lambda r: r.received_ms)


def _uncovered(start: int, end: int, quiet: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end] outside every quiet window."""
    pieces = [(start, end)]
    for q_start, q_end in quiet:
        pieces = [
            piece
            for a, b in pieces
            for piece in ((a, min(b, q_start)), (max(a, q_end), b))
            if piece[1] > piece[0]
        ]
    return pieces


def _all_metrics(obs: Observation) -> set[str]:
    """Every metric the gateway ever reported, start-up included."""
    return set().union(*(r.reported for r in obs.telemetry)) if obs.telemetry else set()


def _silences(
    obs: Observation, live: list[TelemetryRecord], params: HeartbeatParams
) -> list[dict[str, Any]]:
    """Per metric, silences longer than the heartbeat outside outage windows."""
    quiet = _quiet_windows(obs, int(params.outage_margin_s * 1000))
    limit_ms = (params.heartbeat_s + params.slack_s) * 1000
    names = sorted(_all_metrics(obs))
    found = []
    for name in names:
        times = [obs.steady_from_ms, *(r.received_ms for r in live if name in r.reported)]
        times.append(obs.finished_ms)
        for before, after in itertools.pairwise(times):
            longest = max((b - a for a, b in _uncovered(before, after, quiet)), default=0)
            if longest > limit_ms:
                found.append(
                    {"metric": name, "from_ms": before, "to_ms": after, "silent_s": longest / 1000}
                )
    return found


def _deadband_violations(
    live: list[TelemetryRecord], deadband: dict[str, float]
) -> list[dict[str, Any]]:
    """Changes inside the deadband sent in a partial report (a heartbeat sends everything)."""
    everything = set().union(*(r.reported for r in live)) if live else set()
    last: dict[str, float] = {}
    found = []
    for record in live:
        full = record.reported >= everything
        for name, value in record.metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            inside = name in last and abs(value - last[name]) <= deadband.get(name, -1.0)
            if inside and not full:
                change = round(abs(value - last[name]), 6)
                found.append(
                    {
                        "metric": name,
                        "received_ms": record.received_ms,
                        "change": change,
                        "deadband": deadband[name],
                    }
                )
            last[name] = value
    return found


@check("deadband_heartbeat", params=HeartbeatParams)
def deadband_heartbeat(ctx: CheckContext[HeartbeatParams]) -> CheckOutcome:
    """Each metric at least every heartbeat_s; changes inside the deadband not sent."""
    obs, params = ctx.observation, ctx.params
    live = _live_telemetry(obs)
    silences = _silences(obs, live, params)
    violations = _deadband_violations(live, params.deadband)
    seconds = max((obs.finished_ms - obs.steady_from_ms) / 1000, 1.0)
    rate = len(live) / seconds
    allowed = max(1, len(live) // 50)
    parts = [
        (
            f"heartbeat: {len(silences)} silences over {params.heartbeat_s + params.slack_s:g} s",
            1.0,
            bool(live) and not silences,
        ),
        (
            f"deadband: {len(violations)} changes inside the deadband sent, {rate:.2f} msg/s "
            f"(max {params.max_rate_hz:g})",
            1.0,
            bool(live) and len(violations) <= allowed and rate <= params.max_rate_hz,
        ),
    ]
    evidence = {
        "expected": f"every metric at least every {params.heartbeat_s:g} s "
        f"(+{params.slack_s:g} s); deadbands {params.deadband or 'none'}; "
        f"at most {params.max_rate_hz:g} msg/s",
        "saw": {
            "silences": silences[:10],
            "deadband_violations": violations[:10],
            "rate_hz": round(rate, 3),
            "messages": len(live),
        },
        "where": f"iiot/{obs.tenant}/{obs.device}/telemetry (live, after start-up)",
    }
    return ctx.outcome(parts, evidence)
