"""sec-04: an intrusion detector's alerts against the attacks the grader really made.

The grader plays the plant network's traffic through its Modbus tap (grader/modbus_tap.py):
an HMI polling, legit writes of the engineering workstation, and four attacks from
unknown addresses. The submission reads the tap's feed and publishes one alert per
detection on `iiot/<tenant>/ids/alert`:

    {"ts": <ms>, "type": "unauthorised_write" | "address_scan" | "unit_scan" |
     "function_scan", "client": "<the attacker's address>", ...}

An alert matches an attack when type and client are equal and it arrived after the
attack started (arrival time at the grader's observer, never the detector's own `ts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.modbus_tap import ATTACK_TYPES, ModbusTap
from grader.observation import decode_json

if TYPE_CHECKING:
    from grader.observation import Observation
    from grader.probes.context import ProbeContext

Part = Literal["detections", "timeliness", "false_positives"]
ALERT_TOPIC = "iiot/{tenant}/ids/alert"


class IntrusionParams(CheckParams):
    parts: tuple[Part, ...] = Field(min_length=1)
    max_delay_s: float = Field(
        default=3.0, gt=0, description="timeliness: alert at most this long after the attack ended"
    )


@dataclass(frozen=True)
class Alert:
    received_ms: int
    type: str
    client: str


@dataclass(frozen=True)
class Attack:
    type: str
    client: str
    start_ms: int
    end_ms: int


def alerts_of(obs: Observation) -> tuple[list[Alert], list[str]]:
    """The detector's alerts, and what could not be read as one."""
    topic = ALERT_TOPIC.format(tenant=obs.tenant)
    alerts, garbled = [], []
    for message in obs.messages:
        if message.topic != topic:
            continue
        data, _ = decode_json(message.payload)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("type"), str)
            or not isinstance(data.get("client"), str)
        ):
            garbled.append(message.payload[:120].decode(errors="replace"))
            continue
        alerts.append(Alert(message.received_ms, data["type"], data["client"]))
    return alerts, garbled


def attacks_of(obs: Observation, check_id: str) -> list[Attack]:
    out = []
    for record in obs.probes_of(check_id):
        if record.name.startswith("attack-"):
            d = record.detail
            out.append(
                Attack(str(d["type"]), str(d["client"]), int(d["start_ms"]), int(d["end_ms"]))
            )
    return out


def _matches(alert: Alert, attack: Attack) -> bool:
    return (
        alert.type == attack.type
        and alert.client == attack.client
        and alert.received_ms >= attack.start_ms
    )


@check("intrusion_detection", params=IntrusionParams)
def intrusion_detection(ctx: CheckContext[IntrusionParams]) -> CheckOutcome:
    """Detections per attack, their delay, and alerts that match no attack."""
    obs, params = ctx.observation, ctx.params
    attacks = attacks_of(obs, ctx.spec.id)
    alerts, garbled = alerts_of(obs)
    legit = [r for r in obs.probes_of(ctx.spec.id) if r.name == "legit-writes"]
    legit_writes: list[Any] = list(legit[0].detail.get("writes", [])) if legit else []
    played = len(attacks) == len(ATTACK_TYPES)
    parts: list[tuple[str, float, bool]] = []
    seen: dict[str, Any] = {}
    limit_ms = int(params.max_delay_s * 1000)
    for attack in attacks:
        first = min((a.received_ms for a in alerts if _matches(a, attack)), default=None)
        seen[attack.type] = {
            "client": attack.client,
            "attack_ms": [attack.start_ms - obs.started_ms, attack.end_ms - obs.started_ms],
            "first_alert_ms": None if first is None else first - obs.started_ms,
            "time_to_detect_s": None
            if first is None
            else round((first - attack.start_ms) / 1000, 2),
        }
        if "detections" in params.parts:
            parts.append((f"{attack.type} from {attack.client} detected", 1.0, first is not None))
        if "timeliness" in params.parts:
            parts.append(
                (
                    f"{attack.type} reported within {params.max_delay_s:g} s of its end",
                    1.0,
                    first is not None and first <= attack.end_ms + limit_ms,
                )
            )
    if not played:
        parts.append(
            (
                f"the grader played {len(attacks)} of {len(ATTACK_TYPES)} attacks "
                "(the lab needs modbus_tap: true)",
                1.0,
                False,
            )
        )
    false_alerts = [a for a in alerts if not any(_matches(a, attack) for attack in attacks)]
    # silence has no false positives: precision counts only for a detector that detects
    detected = sum(1 for entry in seen.values() if entry["first_alert_ms"] is not None)
    if "false_positives" in params.parts:
        label = (
            f"{len(false_alerts)} alerts that match no attack "
            f"(legit traffic: the HMI's reads, {len(legit_writes)} engineering writes)"
        )
        if not detected:
            label += ", from a detector that detected no attack"
        if garbled:
            label += f"; {len(garbled)} alerts not in the contract"
        ok = played and bool(legit_writes) and detected > 0 and not false_alerts and not garbled
        parts.append((label, 2.0, ok))
    evidence: dict[str, Any] = {
        "expected": f"one alert per attack on {ALERT_TOPIC.format(tenant=obs.tenant)} "
        f"(type and client), within {params.max_delay_s:g} s of the attack's end; "
        "no alert for legit traffic",
        "saw": seen,
        "alerts": len(alerts),
        "false_alerts": [
            {"at_ms": a.received_ms - obs.started_ms, "type": a.type, "client": a.client}
            for a in false_alerts[:10]
        ],
        "legit_writes": legit_writes[:5],
        "where": "the grader's observer (arrival times) and the grader's own traffic log",
    }
    if garbled:
        evidence["garbled_alerts"] = garbled[:5]
    return ctx.outcome(parts, evidence)


@probe("intrusion_detection")
async def probe_traffic(ctx: ProbeContext[IntrusionParams]) -> None:
    """Play the tap's schedule (once for every check of this kind) and log what ran."""
    tap = getattr(ctx.env, "tap", None)
    if not isinstance(tap, ModbusTap):
        ctx.record(
            "no-tap", expected="the grader's Modbus tap", saw="the lab has no modbus_tap", ok=False
        )
        return
    episodes = await tap.play(ctx.datasheet, ctx.started_monotonic)
    for index, episode in enumerate(episodes):
        ctx.record(
            f"attack-{index}",
            expected="an alert of this type and client",
            saw=f"{episode.requests} requests",
            ok=True,
            type=episode.type,
            client=episode.client,
            start_ms=episode.start_ms,
            end_ms=episode.end_ms,
        )
    ctx.record(
        "legit-writes",
        expected="no alert",
        saw=f"{len(tap.legit_writes)} writes",
        ok=True,
        writes=list(tap.legit_writes),
        hmi=tap.schedule.hmi,
        engineering=tap.schedule.engineering,
    )
