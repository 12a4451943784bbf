"""Security checks: the grader attacks the broker itself; OPC UA from the session log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

OTHER_TENANT = "grader-intruder"


class BrokerSecurityParams(CheckParams):
    at: float = Field(default=5.0, ge=0)
    require_tls: bool = True


ATTACKS = {
    "anonymous": "anonymous client refused",
    "wrong_password": "gateway user with a wrong password refused",
    "cross_tenant_read": "gateway user cannot read another tenant's topics",
    "cross_tenant_write": "gateway user cannot write another tenant's topics",
    "plaintext_closed": "no plaintext MQTT listener (TLS required)",
}


@check("broker_security", params=BrokerSecurityParams)
def broker_security(ctx: CheckContext[BrokerSecurityParams]) -> CheckOutcome:
    """The grader attacks the broker: anonymous, wrong password, cross-tenant, plaintext."""
    obs = ctx.observation
    records = {p.name: p for p in obs.probes_of(ctx.spec.id)}
    names = [n for n in ATTACKS if n != "plaintext_closed" or ctx.params.require_tls]
    # a broker that serves nobody refuses every attack too: refusals count only when the
    # lab's gateway got through it (a status or telemetry message on its tenant)
    served = bool(obs.of_kind("status") or obs.of_kind("telemetry"))
    unserved = "" if served else " (but the gateway never published through the broker)"
    parts = [
        (
            ATTACKS[name] + ("" if name in records else " (not attempted)") + unserved,
            1.0,
            served and name in records and records[name].ok,
        )
        for name in names
    ]
    evidence = {
        "expected": {
            name: records[name].expected if name in records else ATTACKS[name] for name in names
        },
        "saw": {name: records[name].saw if name in records else "not attempted" for name in names},
        "where": "the grader's own MQTT connections to the lab broker",
        "gateway_served": served,
    }
    return ctx.outcome(parts, evidence)


async def _refused(
    ctx: ProbeContext[BrokerSecurityParams],
    name: str,
    *,
    username: str | None,
    password: str | None,
) -> None:
    broker = ctx.env.broker_info
    listeners = [(p, False) for p in [broker.plaintext_port] if p] + [
        (p, True) for p in [broker.tls_port] if p
    ]
    saws = []
    ok = True
    for port, tls in listeners:
        refusal = await ctx.env.try_connect(
            username=username, password=password, port=port, tls=tls
        )
        saws.append(
            f"{'TLS' if tls else 'plaintext'} port {port}: "
            + ("ACCEPTED" if refusal is None else f"refused ({refusal})")
        )
        ok = ok and refusal is not None
    ctx.record(name, expected=ATTACKS[name], saw="; ".join(saws), ok=ok)


@probe("broker_security")
async def probe_broker(ctx: ProbeContext[BrokerSecurityParams]) -> None:
    await ctx.sleep_until(ctx.params.at)
    broker = ctx.env.broker_info
    await _refused(ctx, "anonymous", username=None, password=None)
    user, password = broker.gateway_username, broker.gateway_password
    if user is None or password is None:
        for name in ("wrong_password", "cross_tenant_read", "cross_tenant_write"):
            ctx.record(name, expected=ATTACKS[name], saw="the broker has no gateway user", ok=False)
    else:
        await _refused(ctx, "wrong_password", username=user, password=password + "-wrong")
        result = await ctx.env.cross_tenant(user, password, OTHER_TENANT)
        for name in ("cross_tenant_read", "cross_tenant_write"):
            ctx.record(
                name, expected=ATTACKS[name], saw=str(result[name]), ok=result[name] == "refused"
            )
    if ctx.params.require_tls:
        port = broker.plaintext_port or broker.closed_plaintext_port
        refusal = (
            "no plaintext port"
            if port is None
            else await ctx.env.try_connect(username=user, password=password, port=port, tls=False)
        )
        ctx.record(
            "plaintext_closed",
            expected=ATTACKS["plaintext_closed"],
            saw=f"plaintext port {port}: "
            + ("ACCEPTED" if refusal is None else f"refused ({refusal})"),
            ok=refusal is not None,
        )


class OpcuaSecurityParams(CheckParams):
    policy: str = "Basic256Sha256"
    mode: str = "SignAndEncrypt"
    require_user: bool = False


@check("opcua_security_negotiated", params=OpcuaSecurityParams)
def opcua_security_negotiated(ctx: CheckContext[OpcuaSecurityParams]) -> CheckOutcome:
    """Every OPC UA session the gateway opened used the required policy and mode."""
    params, sessions = ctx.params, ctx.observation.opcua_sessions
    weak = [s for s in sessions if s.policy != params.policy or s.mode != params.mode]
    anonymous = [s for s in sessions if not s.user]
    parts = [
        ("the gateway opened an OPC UA session", 1.0, bool(sessions)),
        (
            f"{len(weak)} of {len(sessions)} sessions without {params.policy} {params.mode}",
            2.0,
            bool(sessions) and not weak,
        ),
    ]
    if params.require_user:
        parts.append(
            ("sessions authenticate a user (not anonymous)", 1.0, bool(sessions) and not anonymous)
        )
    evidence = {
        "expected": f"policy {params.policy}, mode {params.mode}"
        + (", a user name" if params.require_user else ""),
        "saw": [
            {
                "opened_ms": s.opened_ms,
                "client": s.client,
                "policy": s.policy,
                "mode": s.mode,
                "user": s.user,
            }
            for s in sessions[:10]
        ],
        "where": "the OPC UA server's session log",
    }
    return ctx.outcome(parts, evidence)
