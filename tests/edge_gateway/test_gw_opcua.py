"""OPC UA source: Basic256Sha256 with a username and a generated client certificate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gateway_helpers import Listener, StartBroker, assert_served_in_order

from edge_gateway import GatewayConfig
from edge_gateway.config import Deadband, OpcuaSourceConfig
from edge_gateway.gateway import Gateway
from iiotlab.mqtt import MqttClient
from simulators.runtime import now_ms
from simulators.simulation import Simulation, SimulationConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_secure_session_values_and_write(
    mode: str, start_broker: StartBroker, tmp_path: Path
) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="kim", enable_modbus=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        sheet = sim.datasheets["tank"]
        started_ms = now_ms()
        user = sheet.opcua.users[0]
        source = OpcuaSourceConfig(
            endpoint=sim.opcua_url,
            security_policy="Basic256Sha256",
            security_mode=mode,  # type: ignore[arg-type]
            username=user["username"],
            password=user["password"],
            certificate_dir=tmp_path / "certs",
            sampling_interval_ms=100,
            publishing_interval_ms=200,
        )
        config = GatewayConfig.from_datasheet(
            sheet, broker_url=broker.url, prefer="opcua", buffer_path=tmp_path / "b.db"
        )
        tags = [
            tag.model_copy(update={"deadband": Deadband(absolute=0.001)})
            if tag.name == "level"
            else tag
            for tag in config.tags
        ]
        config = config.model_copy(update={"sources": {"opcua": source}, "tags": tags})
        writable = next(t for t in sheet.tags if t.access == "rw" and t.range and t.range[1] > 1)
        async with Gateway(config), MqttClient(broker.url, client_id="ops") as ops:
            await ears.wait_for(lambda: len(ears.payloads("telemetry")) >= 3, what="telemetry")
            command = {"v": 1, "id": "c-1", "metric": writable.name, "value": 12.0}
            await ops.publish("iiot/kim/tank-1/cmd", json.dumps(command).encode())
            await ears.wait_for(lambda: bool(ears.payloads("cmd/ack")), what="the ack")
        assert ears.payloads("cmd/ack")[0] == {"v": 1, "id": "c-1", "ok": True, "error": None}
        assert sim.runtime("tank").snapshot()[writable.name] == pytest.approx(12.0)
        assert (tmp_path / "certs" / "gateway-client-cert.der").exists()
        session = sim.opcua_sessions[0]
        assert (session.policy, session.mode, session.user) == (
            "Basic256Sha256",
            mode,
            user["username"],
        )
        compared = assert_served_in_order(sim, sheet, ears.payloads("telemetry"), started_ms)
        assert set(compared) == {t.name for t in sheet.tags if t.opcua is not None}
