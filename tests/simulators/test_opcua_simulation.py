"""The OPC UA server inside a real Simulation: a student's datasheet, one state with the truth."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.simulation import Simulation, SimulationConfig

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CLIENT_URI = "urn:iiotlab:tests:opcua-simulation-client"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def simulation(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulation]:
    config = SimulationConfig(
        plants=("tank",),
        lab="lab-opcua",
        student="s-opcua",
        enable_modbus=False,
        cert_dir=tmp_path_factory.mktemp("sim-opcua-certs"),
    )
    async with Simulation(config) as sim:
        yield sim


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sim-opcua-client")
    key = cert_gen.generate_private_key()
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        CLIENT_URI,
        {},
        [x509.UniformResourceIdentifier(CLIENT_URI)],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    (folder / "client.der").write_bytes(certificate.public_bytes(Encoding.DER))
    (folder / "client.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    return folder / "client.der", folder / "client.pem"


async def student_client(sim: Simulation, certificate: tuple[Path, Path]) -> Client:
    """Connects as the student's datasheet says: its endpoint, its user, SignAndEncrypt."""
    datasheet = sim.datasheets["tank"]
    assert datasheet.opcua.endpoint == sim.opcua_url
    user = datasheet.opcua.users[0]
    client = Client(sim.opcua_url, timeout=10)
    client.application_uri = CLIENT_URI
    client.set_user(user["username"])
    client.set_password(user["password"])
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(certificate[0]),
        str(certificate[1]),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


def epoch_ms(stamp: datetime.datetime | None) -> int:
    assert stamp is not None
    return round(stamp.replace(tzinfo=stamp.tzinfo or datetime.UTC).timestamp() * 1000)


async def test_every_datasheet_node_reads_with_the_student_credentials(
    simulation: Simulation, client_certificate: tuple[Path, Path]
) -> None:
    datasheet = simulation.datasheets["tank"]
    async with await student_client(simulation, client_certificate) as client:
        namespace = await client.get_namespace_index(datasheet.opcua.namespace_uri)
        assert datasheet.opcua.object_node_id is not None
        plant_object = client.get_node(datasheet.opcua.object_node_id)
        assert plant_object.nodeid.NamespaceIndex == namespace
        for tag in datasheet.tags:
            assert tag.opcua is not None
            node = client.get_node(tag.opcua.node_id)
            data = await node.read_data_value()
            assert data.StatusCode is not None and data.StatusCode.is_good(), tag.name
            assert (await node.read_browse_name()).Name == tag.opcua.browse_name
    record = simulation.opcua_sessions[-1]
    user = datasheet.opcua.users[0]["username"]
    assert (record.policy, record.mode, record.user) == ("Basic256Sha256", "SignAndEncrypt", user)


async def test_subscribed_values_are_the_simulation_truth(
    simulation: Simulation, client_certificate: tuple[Path, Path]
) -> None:
    datasheet = simulation.datasheets["tank"]
    level = datasheet.tag("level")
    assert level.opcua is not None
    received: asyncio.Queue[ua.DataValue] = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node: object, value: object, data: object) -> None:
            received.put_nowait(data.monitored_item.Value)  # type: ignore[attr-defined]

    async with await student_client(simulation, client_certificate) as client:
        subscription = await client.create_subscription(50, Handler())
        await subscription.subscribe_data_change(client.get_node(level.opcua.node_id))
        for _ in range(3):
            data = await asyncio.wait_for(received.get(), timeout=5)
            assert data.Value is not None
            ts_ms = epoch_ms(data.SourceTimestamp)
            truth = simulation.truth.value_at(simulation.runtime("tank").device, "level", ts_ms)
            assert data.Value.Value == truth


async def test_setpoint_write_lands_in_the_plant_and_the_write_log(
    simulation: Simulation, client_certificate: tuple[Path, Path]
) -> None:
    datasheet = simulation.datasheets["tank"]
    setpoint = datasheet.tag("pump_speed_sp")
    assert setpoint.opcua is not None
    async with await student_client(simulation, client_certificate) as client:
        node = client.get_node(setpoint.opcua.node_id)
        await node.write_value(ua.DataValue(ua.Variant(42.0, ua.VariantType.Double)))
        with pytest.raises(ua.uaerrors.BadOutOfRange):
            await node.write_value(ua.DataValue(ua.Variant(1000.0, ua.VariantType.Double)))
    assert simulation.runtime("tank").snapshot()["pump_speed_sp"] == 42.0
    opcua_writes = [w for w in simulation.write_log if w.protocol == "opcua"]
    user = datasheet.opcua.users[0]["username"]
    assert [(w.tag, w.value, w.ok) for w in opcua_writes[-2:]] == [
        ("pump_speed_sp", 42.0, True),
        ("pump_speed_sp", 1000.0, False),
    ]
    assert opcua_writes[-1].source.startswith(f"opcua:{user}@127.0.0.1:")
