"""Independent clients (mosquitto_pub / mosquitto_sub, libmosquitto) against our brokers."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from mqtt_helpers import StartBroker, connected, receive

from iiotlab.certs import TlsFiles
from iiotlab.mqtt import Broker, BrokerConfig, BrokerUser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("mosquitto_pub") is None, reason="mosquitto-clients is not installed"
    ),
]

USER = BrokerUser("student", "s3cret", "demo")


def _cli_options(broker: Broker, user: BrokerUser | None, tls: TlsFiles | None) -> list[str]:
    port = broker.tls_port if tls else broker.port
    options = ["-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311"]
    if user is not None:
        options += ["-u", user.username, "-P", user.password]
    if tls is not None:
        options += ["--cafile", str(tls.ca_file)]
    return options


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_mosquitto_pub_reaches_our_client(start_broker: StartBroker) -> None:
    async with (
        start_broker(BrokerConfig(users=(USER,))) as broker,
        connected(broker.url_for(USER), "platform") as platform,
    ):
        await platform.subscribe("iiot/demo/#")
        options = _cli_options(broker, USER, None)
        await _run("mosquitto_pub", *options, "-q", "1", "-t", "iiot/demo/t", "-m", "from cli")
        message = await receive(platform)
    assert (message.topic, message.payload, message.qos) == ("iiot/demo/t", b"from cli", 1)


async def test_mosquitto_sub_receives_our_retained_and_live_messages(
    start_broker: StartBroker,
) -> None:
    async with (
        start_broker(BrokerConfig(users=(USER,))) as broker,
        connected(broker.url_for(USER), "gw") as gateway,
    ):
        await gateway.publish("iiot/demo/tank-1/status", b"online", retain=True)
        options = _cli_options(broker, USER, None)
        subscriber = await asyncio.create_subprocess_exec(
            "mosquitto_sub", *options, "-q", "1", "-t", "iiot/demo/#", "-C", "2", "-v",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert subscriber.stdout is not None
        first = await asyncio.wait_for(subscriber.stdout.readline(), 10)
        await gateway.publish("iiot/demo/tank-1/telemetry", b'{"v":1}')
        rest, _ = await asyncio.wait_for(subscriber.communicate(), 10)
    assert first.decode().strip() == "iiot/demo/tank-1/status online"
    assert rest.decode().strip() == 'iiot/demo/tank-1/telemetry {"v":1}'


async def test_mosquitto_clients_over_tls(start_broker: StartBroker, tls_files: TlsFiles) -> None:
    config = BrokerConfig(users=(USER,), tls=tls_files, plaintext=False)
    async with (
        start_broker(config) as broker,
        connected(broker.url_for(USER), "platform", ca_file=tls_files.ca_file) as platform,
    ):
        await platform.subscribe("iiot/demo/#")
        options = _cli_options(broker, USER, tls_files)
        await _run("mosquitto_pub", *options, "-q", "1", "-t", "iiot/demo/tls", "-m", "x")
        assert (await receive(platform)).payload == b"x"


async def test_mosquitto_pub_with_a_bad_password_is_refused(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig(users=(USER,))) as broker:
        wrong = BrokerUser(USER.username, "nope", USER.tenant)
        process = await asyncio.create_subprocess_exec(
            "mosquitto_pub", *_cli_options(broker, wrong, None), "-t", "iiot/demo/x", "-m", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode != 0
    assert "not authori" in output.decode().lower()
