"""The grader as attacker: cross-tenant reads and writes with a real tenant account."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.environment import LabEnvironment

WAIT_S = 1.5


async def _receives(client: object, marker: bytes) -> bool:
    async def first() -> bool:
        async for message in client.messages():  # type: ignore[attr-defined]
            if message.payload == marker:
                return True
        return False

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            return await first()
    return False


async def cross_tenant_attempt(
    env: LabEnvironment, username: str, password: str, other: str
) -> dict[str, str]:
    """As `username`: subscribe to and publish on `iiot/<other>/...`; what got through."""
    from iiotlab.mqtt import MqttConnectError, MqttSubscribeError

    access = env.broker_info
    tls = access.tls_required
    port = access.tls_port if tls else access.plaintext_port
    assert port is not None
    scheme = "mqtts" if tls else "mqtt"
    from grader.environment import _url

    attacker = env._client(
        _url(scheme, "127.0.0.1", port, username, password),
        env._ca_file if tls else None,
        "grader-intruder",
        auto_reconnect=False,
    )
    admin_url, ca = env.admin_url()
    witness = env._client(admin_url, ca, "grader-witness", auto_reconnect=False)
    topic = f"iiot/{other}/victim-1/telemetry"
    result = {"cross_tenant_read": "not attempted", "cross_tenant_write": "not attempted"}
    try:
        await attacker.connect(timeout=5)
        await witness.connect(timeout=5)
        await witness.subscribe(f"iiot/{other}/#")
        try:
            await attacker.subscribe(f"iiot/{other}/#")
            marker = secrets.token_hex(8).encode()
            await witness.publish(topic, marker)
            read = await _receives(attacker, marker)
            result["cross_tenant_read"] = "READ another tenant's message" if read else "refused"
        except MqttSubscribeError:
            result["cross_tenant_read"] = "refused"
        marker = secrets.token_hex(8).encode()
        with contextlib.suppress(MqttConnectError):
            await attacker.publish(topic, marker)
        wrote = await _receives(witness, marker)
        result["cross_tenant_write"] = "WROTE to another tenant's topic" if wrote else "refused"
    except MqttConnectError as exc:
        result = {name: f"could not connect as {username}: {exc}"[:200] for name in result}
    finally:
        await attacker.disconnect()
        await witness.disconnect()
    return result
