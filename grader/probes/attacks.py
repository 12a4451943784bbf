"""The grader as attacker: cross-tenant reads and writes with a real tenant account."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iiotlab.mqtt import MqttClient

WAIT_S = 1.5


async def _receives(client: MqttClient, marker: bytes) -> bool:
    async def first() -> bool:
        async for message in client.messages():
            if message.payload == marker:
                return True
        return False

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            return await first()
    return False


async def cross_tenant_attempt(
    attacker: MqttClient, witness: MqttClient, username: str, other: str
) -> dict[str, str]:
    """As `attacker` (a tenant's account): subscribe to and publish on `iiot/<other>/...`.

    `witness` is the grader's administrator; what got through is returned."""
    from iiotlab.mqtt import MqttConnectError, MqttSubscribeError

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
