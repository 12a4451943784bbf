"""`iiotlab broker`: argument parsing, and a real run answered by our client."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from mqtt_helpers import connected, receive

from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerKind, MqttClient, MqttConnectError
from iiotlab.mqtt.cli import parse_user_option

# Until iiotlab/cli.py lists "iiotlab.mqtt.cli" in PARTS, run the command from its own app.
_RUN = (
    "import typer; from iiotlab.mqtt.cli import register; app = typer.Typer(); "
    "app.callback()(lambda: None); register(app); app()"
)


@pytest.mark.unit
def test_user_option_forms() -> None:
    assert parse_user_option("alice:pw:alice") == ("alice", "pw", "alice")
    assert parse_user_option("root:p:w:*") == ("root", "p:w", None)
    with pytest.raises(ConfigError, match="--user"):
        parse_user_option("alice:pw")


@pytest.mark.integration
async def test_broker_command_serves_until_interrupted(broker_kind: BrokerKind) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RUN, "broker", "--kind", broker_kind, "--port", "0",
        "--user", "alice:pw:alice", "--user", "root:adm:*",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith(f"MQTT broker ({broker_kind}) on mqtt://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        async with (
            connected(f"mqtt://root:adm@127.0.0.1:{port}", "root") as root,
            connected(f"mqtt://alice:pw@127.0.0.1:{port}", "alice") as alice,
        ):
            await root.subscribe("iiot/#")
            await alice.publish("iiot/alice/x", b"1")
            assert (await receive(root)).payload == b"1"
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0


@pytest.mark.integration
async def test_broker_command_with_mutual_tls(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RUN, "broker", "--port", "0", "--tls-dir", str(tls_dir),
        "--tls-port", "0", "--no-plaintext", "--require-client-cert",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("TLS on mqtts://127.0.0.1:"), line
        url = line.split()[2]
        files = {"ca_file": tls_dir / "ca.crt"}
        with pytest.raises(MqttConnectError, match="client certificate"):
            await MqttClient(url, client_id="anon", **files).connect(timeout=5)  # type: ignore[arg-type]
        mine = {"cert_file": tls_dir / "client.crt", "key_file": tls_dir / "client.key"}
        async with connected(url, "with-cert", **files, **mine) as client:
            assert client.connected
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0
