"""The gateway over mutual TLS: a broker that requires client certificates, on both brokers."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_helpers import Listener

from edge_gateway.config_builders import config_from_env
from edge_gateway.gateway import Gateway
from iiotlab.certs import make_tls_files
from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerConfig, make_broker
from simulators.simulation import Simulation, SimulationConfig

pytestmark = pytest.mark.integration


async def test_gateway_publishes_with_a_client_certificate(
    broker_kind: str, tmp_path: Path
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    assert tls.client_cert_file is not None and tls.client_key_file is not None
    config = BrokerConfig(tls=tls, require_client_cert=True)
    sim_config = SimulationConfig(plants=("tank",), student="mia", enable_opcua=False)
    async with (
        make_broker(broker_kind, config) as broker,  # type: ignore[arg-type]
        Simulation(sim_config) as sim,
    ):
        sheet = tmp_path / "ds.json"
        sheet.write_text(sim.datasheets["tank"].model_dump_json())
        env = {
            "IIOTLAB_DATASHEET": str(sheet),
            "IIOTLAB_MODBUS_HOST": "127.0.0.1",
            "IIOTLAB_MODBUS_PORT": str(sim.modbus_port),
            "IIOTLAB_MQTT_URL": f"mqtts://127.0.0.1:{broker.tls_port}",
            "IIOTLAB_MQTT_CA": str(tls.ca_file),
            "IIOTLAB_MQTT_CERT": str(tls.client_cert_file),
            "IIOTLAB_MQTT_KEY": str(tls.client_key_file),
            "IIOTLAB_STATE_DIR": str(tmp_path / "state"),
        }
        gateway_config = config_from_env(env)
        assert gateway_config.broker.cert_file == tls.client_cert_file
        listener = Listener(
            f"mqtts://127.0.0.1:{broker.tls_port}",
            ca_file=tls.ca_file,
            cert_file=tls.client_cert_file,
            key_file=tls.client_key_file,
        )
        async with listener as ears, Gateway(gateway_config):
            await ears.wait_for(lambda: bool(ears.payloads("telemetry")), 20, "telemetry")
        assert ears.payloads("telemetry")[0]["metrics"]


def test_half_a_client_certificate_is_refused_with_the_variable(tmp_path: Path) -> None:
    sheet = tmp_path / "ds.json"
    from simulators.variants import build_datasheet

    sheet.write_text(build_datasheet("tank", "sandbox", "mia", "secret").model_dump_json())
    base = {"IIOTLAB_DATASHEET": str(sheet), "IIOTLAB_STATE_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="IIOTLAB_MQTT_CERT") as error:
        config_from_env({**base, "IIOTLAB_MQTT_URL": "mqtts://h:8883", "IIOTLAB_MQTT_CERT": "c"})
    assert "go together" in str(error.value)
    with pytest.raises(ConfigError, match="needs TLS"):
        config_from_env({**base, "IIOTLAB_MQTT_CERT": "c.pem", "IIOTLAB_MQTT_KEY": "k.pem"})
