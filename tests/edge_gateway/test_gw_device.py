"""Device side: a PLC outage from the scenario engine, commands, counters over HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from gateway_helpers import Listener, StartBroker, gateway_config

from edge_gateway.gateway import Gateway
from iiotlab.mqtt import MqttClient
from simulators.scenario import ScenarioEvent
from simulators.simulation import Simulation, SimulationConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_plc_outage_marks_bad_then_recovers(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="frank", enable_opcua=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        sheet = sim.datasheets["tank"]
        tags = {tag.name for tag in sheet.tags if tag.modbus is not None}
        async with Gateway(gateway_config(sheet, broker.url, tmp_path)) as gateway:
            # the outage comes once the gateway reads the PLC, however long it took to start
            await ears.wait_for(
                lambda: any(
                    (p.get("quality") or {}).get("level", "good") == "good"
                    and "level" in p["metrics"]
                    for p in ears.payloads("telemetry")
                ),
                what="a good reading",
            )
            await sim.inject(ScenarioEvent(at_s=0.0, kind="modbus_link_down", duration_s=2.0))

            def all_bad() -> bool:
                return any(
                    set((p.get("quality") or {}).items()) >= {(t, "bad") for t in tags}
                    for p in ears.payloads("telemetry")
                )

            await ears.wait_for(all_bad, what="every tag marked bad")
            bad_index = next(
                i
                for i, p in enumerate(ears.payloads("telemetry"))
                if (p.get("quality") or {}).get("level") == "bad"
            )
            bad = ears.payloads("telemetry")[bad_index]
            assert not tags & set(bad["metrics"]), "a bad tag is absent from metrics"

            def recovered() -> bool:
                return any(
                    (p.get("quality") or {}).get("level") == "good" and "level" in p["metrics"]
                    for p in ears.payloads("telemetry")[bad_index:]
                )

            await ears.wait_for(recovered, what="quality good again")
            assert gateway.counters.reconnects >= 1 and gateway.counters.errors >= 1
            assert gateway.sources["plc"].connected
        assert [e.kind for e in sim.truth.events("modbus_link_down")] == ["modbus_link_down"]


async def test_commands_write_allowlisted_tags_only(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    sim_config = SimulationConfig(plants=("tank",), student="gina", enable_opcua=False)
    async with (
        start_broker() as broker,
        Simulation(sim_config) as sim,
        Listener(broker.url) as ears,
    ):
        sheet = sim.datasheets["tank"]
        config = gateway_config(sheet, broker.url, tmp_path, metrics_port=0)
        writable = next(
            t
            for t in sheet.tags
            if t.access == "rw"
            and t.modbus
            and t.range
            and t.modbus.type != "bool"
            and t.modbus.table == "holding"
        )
        assert writable.range is not None
        target = round((writable.range[0] + writable.range[1]) / 3, 1)
        readonly = next(t for t in sheet.tags if t.access == "r")
        base = f"iiot/{sheet.student}/{sheet.device}"
        async with Gateway(config) as gateway, MqttClient(broker.url, client_id="ops") as ops:
            await ears.wait_for(lambda: bool(ears.payloads("telemetry")), what="telemetry")
            commands = {
                "write": (writable.name, target),
                "readonly": (readonly.name, 1.0),
                "range": (writable.name, writable.range[1] + 1000),
            }
            ids = {key: str(uuid.uuid4()) for key in commands}
            for key, (metric, value) in commands.items():
                body = {"v": 1, "id": ids[key], "metric": metric, "value": value}
                await ops.publish(f"{base}/cmd", json.dumps(body).encode())
            await ears.wait_for(lambda: len(ears.payloads("cmd/ack")) >= 3, what="3 acks")
            acks = {a["id"]: a for a in ears.payloads("cmd/ack")}
            assert acks[ids["write"]] == {"v": 1, "id": ids["write"], "ok": True, "error": None}
            assert not acks[ids["readonly"]]["ok"]
            assert "not writable" in acks[ids["readonly"]]["error"]
            assert not acks[ids["range"]]["ok"] and "range" in acks[ids["range"]]["error"]
            actual = sim.runtime("tank").snapshot()[writable.name]
            assert actual == pytest.approx(target, abs=(writable.tolerance or 0) + 1e-6)
            await ears.wait_for(
                lambda: any(
                    abs(float(p["metrics"].get(writable.name, -1e9)) - target) < 0.5
                    for p in ears.payloads("telemetry")
                ),
                what="the new setpoint in telemetry",
            )
            counters = await http_get("127.0.0.1", gateway.metrics_port or 0)
        assert [r.tag for r in sim.write_log if r.ok] == [writable.name]
        assert 'iiotlab_gateway_commands_total{device="tank-1"} 3' in counters
        assert "iiotlab_gateway_read_total" in counters


async def http_get(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    return body
