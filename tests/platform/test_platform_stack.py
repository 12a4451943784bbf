"""`LabStack` with auth: broker passwords per tenant, API tokens, tenant isolation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from platform_helpers import eventually, telemetry

from iiot_platform.stack import LabStack, StackConfig
from iiotlab.mqtt import MqttClient, MqttConnectError

pytestmark = pytest.mark.integration


async def test_auth_stack_needs_passwords_and_tokens(tmp_path: Path) -> None:
    config = StackConfig(
        plants=(), port=0, mqtt_port=0, data_dir=tmp_path, auth=True, tenant="alice"
    )
    async with LabStack(config) as stack:
        info = stack.info()
        assert info["auth"] is True and {t["role"] for t in info["tokens"]} == {
            "admin",
            "instructor",
            "student",
        }
        anonymous = MqttClient(info["mqtt"], client_id="anonymous", auto_reconnect=False)
        with pytest.raises(MqttConnectError):
            await anonymous.connect(timeout=5)
        alice_url = next(u["url"] for u in info["mqtt_users"] if u["tenant"] == "alice")
        gateway = MqttClient(alice_url, client_id="alice-gw")
        await gateway.connect()
        await gateway.publish("iiot/alice/tank-1/telemetry", telemetry("tank-1", 1))
        status = {"v": 1, "state": "online", "ts": int(time.time() * 1000)}
        await gateway.publish("iiot/alice/tank-1/status", json.dumps(status).encode())
        await gateway.disconnect()

        student = next(t["token"] for t in info["tokens"] if t["role"] == "student")
        async with httpx.AsyncClient(base_url=info["platform"]) as api:
            assert (await api.get("/api/devices")).status_code == 401
            headers = {"Authorization": f"Bearer {student}"}

            async def online() -> bool:
                devices = (await api.get("/api/devices", headers=headers)).json()
                return [(d["device"], d["online"]) for d in devices] == [("tank-1", True)]

            await eventually(online)
            other = await api.get("/api/devices?tenant=bob", headers=headers)
            assert other.status_code == 403
