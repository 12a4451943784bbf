"""`iiotlab broker`: argument parsing, and a real run answered by our client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
from mqtt_helpers import connected, receive

from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerKind, MqttClient, MqttConnectError
from iiotlab.mqtt.cli import parse_user_option
from iiotlab.mqtt.mosquitto import find_mosquitto

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


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has exited


async def _listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _start_cli(kind: BrokerKind) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RUN, "broker", "--kind", kind, "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert line.startswith(f"MQTT broker ({kind}) on mqtt://127.0.0.1:"), line
    return process, int(line.rsplit(":", 1)[1])


async def _until_gone(pids: list[int], port: int, within: float = 10) -> None:
    async with asyncio.timeout(within):
        # Other processes' state: nothing to await but the next look.
        while any(_running(pid) for pid in pids) or await _listening(port):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


_MOSQUITTO = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")


@pytest.mark.integration
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_broker_command_stops_its_broker_on_a_signal(
    broker_kind: BrokerKind, signal_number: signal.Signals
) -> None:
    process, port = await _start_cli(broker_kind)
    children = _children(process.pid)
    try:
        if broker_kind == "mosquitto":
            assert len(children) == 1, children
        process.send_signal(signal_number)
        await asyncio.wait_for(process.wait(), 15)
        assert process.returncode == 0
        await _until_gone(children, port, within=2)
    finally:
        for pid in children:  # only when the test failed: leave no broker behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.integration
@pytest.mark.mosquitto
@_MOSQUITTO
async def test_mosquitto_dies_with_a_killed_parent() -> None:
    """PR_SET_PDEATHSIG: even SIGKILL of the Python process takes Mosquitto down."""
    process, port = await _start_cli("mosquitto")
    children = _children(process.pid)
    try:
        assert len(children) == 1, children
        process.kill()
        await process.wait()
        await _until_gone(children, port)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
