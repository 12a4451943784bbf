"""TLS listeners (mqtts://) on every broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from mqtt_helpers import StartBroker, connected, receive

from iiotlab.certs import TlsFiles, make_tls_files
from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerConfig, BrokerUser, MqttClient, MqttConnectError
from iiotlab.mqtt.broker import pick_free_port

pytestmark = pytest.mark.integration

USER = BrokerUser("gw", "gw-pw", "demo")


async def test_mqtts_with_the_ca_works(start_broker: StartBroker, tls_files: TlsFiles) -> None:
    config = BrokerConfig(users=(USER,), tls=tls_files)
    async with start_broker(config) as broker:
        assert broker.tls_url == f"mqtts://127.0.0.1:{broker.tls_port}"
        url = broker.url_for(USER, tls=True)
        async with (
            connected(url, "a", ca_file=tls_files.ca_file) as sender,
            connected(broker.url_for(USER), "b") as plain_receiver,
        ):
            await plain_receiver.subscribe("iiot/demo/#")
            await sender.publish("iiot/demo/tank-1/telemetry", b"over tls")
            assert (await receive(plain_receiver)).payload == b"over tls"


async def test_localhost_name_matches_the_certificate(
    start_broker: StartBroker, tls_files: TlsFiles
) -> None:
    async with start_broker(BrokerConfig(tls=tls_files)) as broker:
        url = f"mqtts://localhost:{broker.tls_port}"
        async with connected(url, "c", ca_file=tls_files.ca_file) as client:
            assert client.connected


async def test_untrusted_ca_is_a_tls_error(
    start_broker: StartBroker, tls_files: TlsFiles, other_ca: Path
) -> None:
    async with start_broker(BrokerConfig(tls=tls_files)) as broker:
        client = MqttClient(broker.tls_url or "", client_id="c", ca_file=other_ca)
        with pytest.raises(MqttConnectError, match="TLS: the certificate"):
            await client.connect(timeout=5)


async def test_plaintext_client_on_the_tls_port_is_refused(
    start_broker: StartBroker, tls_files: TlsFiles
) -> None:
    async with start_broker(BrokerConfig(tls=tls_files)) as broker:
        client = MqttClient(f"mqtt://127.0.0.1:{broker.tls_port}", client_id="c")
        with pytest.raises(MqttConnectError):
            await client.connect(timeout=3)


async def test_tls_only_broker_has_no_plaintext_port(
    start_broker: StartBroker, tls_files: TlsFiles
) -> None:
    port = pick_free_port("127.0.0.1")
    config = BrokerConfig(port=port, tls=tls_files, plaintext=False)
    async with start_broker(config) as broker:
        assert broker.url.startswith("mqtts://")
        assert broker.port == 0
        with pytest.raises(MqttConnectError, match="connection refused"):
            await MqttClient(f"mqtt://127.0.0.1:{port}", client_id="c").connect(timeout=3)
        async with connected(broker.url, "c", ca_file=tls_files.ca_file) as client:
            assert client.connected


async def test_mutual_tls_needs_a_client_certificate_signed_by_the_ca(
    start_broker: StartBroker, tls_files: TlsFiles, tmp_path: Path
) -> None:
    assert tls_files.client_cert_file is not None and tls_files.client_key_file is not None
    config = BrokerConfig(users=(USER,), tls=tls_files, require_client_cert=True)
    async with start_broker(config) as broker:
        url = broker.url_for(USER, tls=True)
        mine = MqttClient(
            url,
            client_id="with-cert",
            ca_file=tls_files.ca_file,
            cert_file=tls_files.client_cert_file,
            key_file=tls_files.client_key_file,
        )
        await mine.connect(timeout=5)
        try:
            assert mine.connected
        finally:
            await mine.disconnect()
        without = MqttClient(url, client_id="no-cert", ca_file=tls_files.ca_file)
        with pytest.raises(MqttConnectError, match="client certificate"):
            await without.connect(timeout=5)
        stranger = make_tls_files(tmp_path / "stranger")  # a certificate of another CA
        assert stranger.client_cert_file is not None and stranger.client_key_file is not None
        foreign = MqttClient(
            url,
            client_id="foreign-cert",
            ca_file=tls_files.ca_file,
            cert_file=stranger.client_cert_file,
            key_file=stranger.client_key_file,
        )
        with pytest.raises(MqttConnectError):
            await foreign.connect(timeout=5)


def test_a_certificate_without_its_key_is_a_config_error(tls_files: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="needs its key"):
        MqttClient("mqtts://127.0.0.1:8883", client_id="c", cert_file=tls_files.client_cert_file)
    with pytest.raises(ConfigError, match="there is none"):
        BrokerConfig(require_client_cert=True)
