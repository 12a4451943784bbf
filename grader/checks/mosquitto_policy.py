"""sec-03: the grader attacks the student's own Mosquitto (grader/mosquitto_submission.py).

One kind, `mosquitto_attacks`, each lab check naming the attacks it scores. Every attack is
a real client of the grader's against the running broker: anonymous and wrong-password
logins, the gateway's account on another tenant's topics, another tenant's account (the
grader's intruder) on the student's tenant, a plaintext connection, and TLS handshakes
offering only TLS 1.0, only TLS 1.1, and TLS 1.2 or newer. A refusal counts only when the
student's gateway got its data through the same broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import warnings
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.mosquitto_submission import INTRUDER, GraderAccount, SubmittedMosquitto

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext
    from iiotlab.mqtt import MqttClient

Attack = Literal[
    "anonymous",
    "wrong_password",
    "cross_tenant_read",
    "cross_tenant_write",
    "intruder_read",
    "intruder_write",
    "plaintext_closed",
    "tls_1_0",
    "tls_1_1",
    "tls_modern",
]

ATTACKS: dict[str, str] = {
    "anonymous": "a client without a user name is refused on every listener",
    "wrong_password": "the gateway's user with a wrong password is refused on every listener",
    "cross_tenant_read": f"the gateway's user cannot read another tenant's topics "
    f"(iiot/{INTRUDER}/#)",
    "cross_tenant_write": "the gateway's user cannot publish to another tenant's topics",
    "intruder_read": f"another tenant's user ({INTRUDER}) cannot read your tenant's topics",
    "intruder_write": f"another tenant's user ({INTRUDER}) cannot publish to your tenant",
    "plaintext_closed": "no plaintext MQTT listener accepts a connection",
    "tls_1_0": "a client offering only TLS 1.0 is refused at the version",
    "tls_1_1": "a client offering only TLS 1.1 is refused at the version",
    "tls_modern": "a TLS 1.2 or 1.3 client with the grader's CA is served",
}
WAIT_S = 3.0  # how long a marker or the retained status may take to arrive (loopback)
OTHER_TENANT = INTRUDER


class MosquittoAttacksParams(CheckParams):
    at: float = Field(default=6.0, ge=0, description="seconds after the gateway starts")
    attacks: tuple[Attack, ...] = Field(min_length=1)


@check("mosquitto_attacks", params=MosquittoAttacksParams)
def mosquitto_attacks(ctx: CheckContext[MosquittoAttacksParams]) -> CheckOutcome:
    """Each attack one part: refused (or, tls_modern, served) while the gateway got through."""
    obs = ctx.observation
    records = {p.name: p for p in obs.probes_of(ctx.spec.id)}
    served = bool(obs.of_kind("status") or obs.of_kind("telemetry"))
    unserved = "" if served else " (but the gateway never published through the broker)"
    names = list(dict.fromkeys(ctx.params.attacks))
    parts = [
        (
            ATTACKS[name] + ("" if name in records else " (not attempted)") + unserved,
            1.0,
            served and name in records and records[name].ok,
        )
        for name in names
    ]
    evidence = {
        "expected": {name: ATTACKS[name] for name in names},
        "saw": {name: records[name].saw if name in records else "not attempted" for name in names},
        "where": "the grader's own clients against the student's Mosquitto",
        "gateway_served": served,
    }
    conf = [dict(r.detail) for r in records.values() if r.detail]
    if conf:
        evidence["detail"] = conf
    return ctx.outcome(parts, evidence)


# -- probing ------------------------------------------------------------------------------


def _client(
    broker: SubmittedMosquitto, user: str | None, password: str | None, *, tls: bool, port: int
) -> MqttClient:
    from iiotlab.mqtt import MqttClient

    credentials = ""
    if user is not None:
        credentials = f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
    url = f"{'mqtts' if tls else 'mqtt'}://{credentials}{broker.host}:{port}"
    ca = broker.tls_files.ca_file if tls and broker.tls_files else None
    return MqttClient(
        url, client_id=f"grader-attack-{secrets.token_hex(3)}", ca_file=ca, auto_reconnect=False
    )


def _listeners(broker: SubmittedMosquitto) -> list[tuple[int, bool]]:
    out = [(broker.port, False)] if broker.submission.plaintext is not None else []
    if broker.submission.tls is not None and broker.tls_port:
        out.append((broker.tls_port, True))
    return out


def _main_listener(broker: SubmittedMosquitto) -> tuple[int, bool]:
    """The listener the gateway uses: TLS when there is one."""
    return _listeners(broker)[-1]


async def _refused_everywhere(
    broker: SubmittedMosquitto, user: str | None, password: str | None
) -> tuple[bool, str]:
    from iiotlab.mqtt import MqttConnectError

    saws, ok = [], True
    for port, tls in _listeners(broker):
        client = _client(broker, user, password, tls=tls, port=port)
        try:
            await client.connect(timeout=5)
        except (MqttConnectError, OSError, TimeoutError) as exc:
            saws.append(f"{'TLS' if tls else 'plaintext'} port {port}: refused ({exc})"[:200])
            continue
        await client.disconnect()
        ok = False
        saws.append(f"{'TLS' if tls else 'plaintext'} port {port}: ACCEPTED")
    return ok, "; ".join(saws)


async def _receives(client: MqttClient, wanted: bytes | None) -> bytes | None:
    """The first message (`wanted`: the first with that payload) within WAIT_S, or None."""

    async def first() -> bytes | None:
        async for message in client.messages():
            if wanted is None or message.payload == wanted:
                return message.topic.encode()
        return None

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            return await first()
    return None


async def tenant_attempt(
    broker: SubmittedMosquitto, attacker: GraderAccount, victim_tenant: str
) -> dict[str, str]:
    """As `attacker`: subscribe to and publish on `iiot/<victim_tenant>/...`.

    Reading: any message of the victim's tenant (the retained status, live telemetry, or the
    observer's marker) reaching the attacker. Writing: the attacker's marker reaching the
    observer. The marker topic has three levels, so no check takes it for gateway data.
    First the observer must get a marker of its own through the topic: silence counts as a
    refusal only on a broker that was seen to deliver there."""
    from iiotlab.mqtt import MqttConnectError, MqttSubscribeError

    port, tls = _main_listener(broker)
    attack = _client(broker, attacker.username, attacker.password, tls=tls, port=port)
    witness = _client(
        broker, broker.observer.username, broker.observer.password, tls=tls, port=port
    )
    topic = f"iiot/{victim_tenant}/intrusion-test"
    result = {"read": "not attempted", "write": "not attempted"}
    try:
        await attack.connect(timeout=5)
        await witness.connect(timeout=5)
        await witness.subscribe(topic)
        control = secrets.token_hex(8).encode()
        await witness.publish(topic, control)
        if await _receives(witness, control) is None:
            unjudged = f"not judged: the grader's observer got nothing through {topic}"
            return {"read": unjudged, "write": unjudged}
        try:
            await attack.subscribe(f"iiot/{victim_tenant}/#")
            await witness.publish(topic, secrets.token_hex(8).encode())
            got = await _receives(attack, None)
            result["read"] = f"READ {got.decode()}" if got else "refused"
        except MqttSubscribeError:
            result["read"] = "refused (subscription denied)"
        marker = secrets.token_hex(8).encode()
        with contextlib.suppress(MqttConnectError):
            await attack.publish(topic, marker)
        wrote = await _receives(witness, marker)
        result["write"] = f"WROTE to {topic}" if wrote else "refused"
    except MqttConnectError as exc:
        result = {k: f"could not connect as {attacker.username}: {exc}"[:200] for k in result}
    finally:
        await attack.disconnect()
        await witness.disconnect()
    return result


def _tls_context(version: ssl.TLSVersion | None, ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
            context.minimum_version = version
            context.maximum_version = version
        # security level 0: the client side of this OpenSSL may then offer TLS 1.0/1.1
        # (the default level refuses their SHA-1 signatures before a byte is sent)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def tls_handshake(host: str, port: int, version: ssl.TLSVersion | None, ca: str) -> str:
    """'ok <version>', 'version refused: ...', or 'failed after the hello: ...'."""
    context = _tls_context(version, ca)
    try:
        async with asyncio.timeout(5):
            _reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host
            )
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION"):
            return f"version refused: {reason}"
        return f"failed after the hello: {reason}"
    except (OSError, TimeoutError) as exc:
        return f"no handshake: {type(exc).__name__}: {exc}"
    ssl_object = writer.get_extra_info("ssl_object")
    negotiated = ssl_object.version() if ssl_object is not None else "?"
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return f"ok {negotiated}"


_OLD = {"tls_1_0": ssl.TLSVersion.TLSv1, "tls_1_1": ssl.TLSVersion.TLSv1_1}
_OPENSSL_NOTE = (
    "the listener did not refuse the version; the handshake then failed only because this "
    "machine's OpenSSL ({}) refuses TLS 1.0/1.1 signatures at its security level, which "
    "another OpenSSL or openssl.cnf would not: set tls_version tlsv1.2 (or tlsv1.3)"
)


async def _tls_attack(
    ctx: ProbeContext[MosquittoAttacksParams], broker: SubmittedMosquitto, name: str
) -> None:
    listener = broker.submission.tls
    if listener is None or broker.tls_files is None or not broker.tls_port:
        ctx.record(name, expected=ATTACKS[name], saw="no TLS listener", ok=False)
        return
    ca = str(broker.tls_files.ca_file)
    directive = listener.tls_version or "(not set: Mosquitto 2.0 then accepts TLS 1.1 too)"
    outcome = await tls_handshake(broker.host, broker.tls_port, _OLD.get(name), ca)
    if name == "tls_modern":
        ok = outcome.startswith("ok")
    else:
        ok = outcome.startswith("version refused") or outcome.startswith("no handshake")
        if outcome.startswith("failed after the hello"):
            outcome += "; " + _OPENSSL_NOTE.format(ssl.OPENSSL_VERSION)
        elif outcome.startswith("ok"):
            outcome = "ACCEPTED: " + outcome
    ctx.record(
        name,
        expected=ATTACKS[name],
        saw=f"TLS port {broker.tls_port}: {outcome}",
        ok=ok,
        tls_version_directive=directive,
    )


@probe("mosquitto_attacks")
async def probe_mosquitto(ctx: ProbeContext[MosquittoAttacksParams]) -> None:
    await ctx.sleep_until(ctx.params.at)
    broker = getattr(ctx.env, "broker", None)
    names = list(dict.fromkeys(ctx.params.attacks))
    if not isinstance(broker, SubmittedMosquitto):
        for name in names:
            ctx.record(
                name,
                expected=ATTACKS[name],
                saw="not attempted: the lab's broker is not the submission's Mosquitto "
                "(lab.yaml needs broker: {kind: mosquitto, submission_conf: true})",
                ok=False,
            )
        return
    from iiotlab.mqtt import MqttConnectError

    sub = broker.submission
    if "anonymous" in names:
        ok, saw = await _refused_everywhere(broker, None, None)
        ctx.record("anonymous", expected=ATTACKS["anonymous"], saw=saw, ok=ok)
    if "wrong_password" in names:
        ok, saw = await _refused_everywhere(broker, sub.username, sub.password + "-wrong")
        ctx.record("wrong_password", expected=ATTACKS["wrong_password"], saw=saw, ok=ok)
    if {"cross_tenant_read", "cross_tenant_write"} & set(names):
        gateway = GraderAccount(sub.username, sub.password)
        result = await tenant_attempt(broker, gateway, OTHER_TENANT)
        for name, key in (("cross_tenant_read", "read"), ("cross_tenant_write", "write")):
            if name in names:
                saw = result[key]
                ctx.record(name, expected=ATTACKS[name], saw=saw, ok=saw.startswith("refused"))
    if {"intruder_read", "intruder_write"} & set(names):
        result = await tenant_attempt(broker, broker.intruder, ctx.tenant)
        for name, key in (("intruder_read", "read"), ("intruder_write", "write")):
            if name in names:
                saw = result[key]
                ctx.record(name, expected=ATTACKS[name], saw=saw, ok=saw.startswith("refused"))
    if "plaintext_closed" in names:
        port = broker.port if sub.plaintext is not None else broker.closed_port
        client = _client(broker, sub.username, sub.password, tls=False, port=port)
        try:
            await client.connect(timeout=5)
        except (MqttConnectError, OSError, TimeoutError) as exc:
            saw, ok = f"plaintext port {port}: refused ({type(exc).__name__}: {exc})"[:200], True
        else:
            await client.disconnect()
            saw, ok = f"plaintext port {port}: ACCEPTED the gateway's user without TLS", False
        ctx.record("plaintext_closed", expected=ATTACKS["plaintext_closed"], saw=saw, ok=ok)
    for name in ("tls_1_0", "tls_1_1", "tls_modern"):
        if name in names:
            await _tls_attack(ctx, broker, name)
