"""OPC UA server of the simulators, through a real asyncua client over loopback.

Only the plant model is a stand-in (`FakeTankRuntime`, a PlantRuntime over a dict: nothing
crosses a process there); every OPC UA exchange is a real client <-> server session.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from iiotlab.datasheet import Datasheet
from simulators.base import (
    InterlockError,
    SnapshotListener,
    TagAccessError,
    TagDefinition,
    TagValueError,
    Value,
)
from simulators.opcua_server import OpcuaPlantServer, OpcuaSecurity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

NAMESPACE_URI = "urn:iiotlab:test:sandbox:demo"

TAGS = (
    TagDefinition("level", "m", "Tank level", "float", "r", (0.0, 5.0)),
    TagDefinition("pump_speed_sp", "%", "Pump speed setpoint", "float", "rw", (0.0, 100.0)),
    TagDefinition("pump_on", "", "Pump run command", "bool", "rw", (0, 1)),
    TagDefinition("batch", "", "Batch number", "int", "rw", (0, 1000)),
    TagDefinition("strokes", "", "Pump strokes", "counter", "r", (0, 4294967295)),
    TagDefinition("serial_number", "", "Serial number", "string", "r"),
)
BROWSE_NAMES = {
    "level": "Level",
    "pump_speed_sp": "PumpSpeedSetpoint",
    "pump_on": "PumpOn",
    "batch": "BatchNumber",
    "strokes": "Strokes",
    "serial_number": "SerialNumber",
}


class FakeTankRuntime:
    """Implements simulators.base.PlantRuntime over a dict; tick() plays the simulation."""

    plant_kind = "tank"

    def __init__(self, device: str = "tank-1") -> None:
        self.device = device
        self.values: dict[str, Value] = {
            "level": 1.5,
            "pump_speed_sp": 50.0,
            "pump_on": False,
            "batch": 7,
            "strokes": 100,
            "serial_number": "TA0123456789",
        }
        self.interlocked = False
        self.writes: list[tuple[str, Value, str]] = []
        self.calls: list[tuple[str, str]] = []
        self._listeners: list[SnapshotListener] = []

    @property
    def tags(self) -> tuple[TagDefinition, ...]:
        return TAGS

    def snapshot(self) -> Mapping[str, Value]:
        return dict(self.values)

    def write(self, tag: str, value: Value, source: str) -> None:
        definition = next((d for d in TAGS if d.name == tag), None)
        if definition is None or definition.access != "rw":
            raise TagAccessError(f"tank tag {tag!r} is read-only")
        if definition.kind != "bool":
            low, high = definition.range
            if not low <= float(value) <= high:
                raise TagValueError(f"{tag}={value!r} is outside {low:g}..{high:g}")
        if tag == "pump_on" and value and self.interlocked:
            raise InterlockError("pump start refused: high-high level")
        self.writes.append((tag, value, source))
        self.values[tag] = value

    def call(self, method: str, source: str) -> None:
        if method == "Start" and self.interlocked:
            raise InterlockError("pump start refused: high-high level")
        self.calls.append((method, source))
        if method in ("Start", "Stop"):
            self.values["pump_on"] = method == "Start"

    def add_listener(self, listener: SnapshotListener) -> None:
        self._listeners.append(listener)

    def tick(self, **changes: Value) -> int:
        """Apply changes, then tell listeners as the simulation does after a tick."""
        self.values.update(changes)
        ts_ms = time.time_ns() // 1_000_000
        for listener in self._listeners:
            listener(dict(self.values), ts_ms)
        return ts_ms


def make_datasheet(object_name: str = "Tank") -> Datasheet:
    tags = [
        {
            "name": tag.name,
            "unit": tag.unit,
            "description": tag.description,
            "access": tag.access,
            "range": list(tag.range),
            "opcua": {
                "node_id": f"ns=2;s={object_name}.{BROWSE_NAMES[tag.name]}",
                "browse_name": BROWSE_NAMES[tag.name],
            },
        }
        for tag in TAGS
    ]
    return Datasheet.model_validate(
        {
            "plant": "tank",
            "lab": "sandbox",
            "student": "demo",
            "device": "tank-1",
            "modbus": {"unit_id": 1},
            "opcua": {"namespace_uri": NAMESPACE_URI, "security": ["None"]},
            "tags": tags,
        }
    )


CLIENT_URI = "urn:iiotlab:tests:opcua-client"
ALICE = ("alice", "wonderland")


def unit_code(code: str) -> int:
    value = 0
    for character in code:
        value = (value << 8) | ord(character)
    return value


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("opcua-client")
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(CLIENT_URI),
        x509.DNSName("localhost"),
    ]
    certificate = cert_gen.generate_self_signed_app_certificate(
        key, CLIENT_URI, {}, names, extended=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    (folder / "client.der").write_bytes(certificate.public_bytes(Encoding.DER))
    (folder / "client.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    return folder / "client.der", folder / "client.pem"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def open_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[OpcuaPlantServer, FakeTankRuntime]]:
    """Default security: None + Basic256Sha256 Sign/SignAndEncrypt, anonymous allowed."""
    runtime = FakeTankRuntime()
    server = OpcuaPlantServer(
        [(runtime, make_datasheet())],
        cert_dir=tmp_path_factory.mktemp("opcua-open"),
        security=OpcuaSecurity(users=dict([ALICE])),
    )
    async with server:
        yield server, runtime


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[OpcuaPlantServer]:
    """Only Basic256Sha256 (Sign, SignAndEncrypt), users only."""
    server = OpcuaPlantServer(
        [(FakeTankRuntime(), make_datasheet())],
        cert_dir=tmp_path_factory.mktemp("opcua-secure"),
        security=OpcuaSecurity(
            policies=("Basic256Sha256:Sign", "Basic256Sha256:SignAndEncrypt"),
            users=dict([ALICE]),
            allow_anonymous=False,
        ),
    )
    async with server:
        yield server


async def secure_client(
    server: OpcuaPlantServer,
    certificate: tuple[Path, Path],
    mode: ua.MessageSecurityMode = ua.MessageSecurityMode.SignAndEncrypt,
    user: tuple[str, str] | None = ALICE,
) -> Client:
    client = Client(server.url, timeout=10)
    client.application_uri = CLIENT_URI
    if user is not None:
        client.set_user(user[0])
        client.set_password(user[1])
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(certificate[0]),
        str(certificate[1]),
        server_certificate=str(server.server_certificate),
        mode=mode,
    )
    return client


class DataChanges:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ua.DataValue] = asyncio.Queue()

    def datachange_notification(self, node: object, value: object, data: object) -> None:
        self.queue.put_nowait(data.monitored_item.Value)  # type: ignore[attr-defined]

    async def next_with(self, value: object) -> ua.DataValue:
        while True:
            data = await asyncio.wait_for(self.queue.get(), timeout=5)
            if data.Value is not None and data.Value.Value == value:
                return data


def epoch_ms(stamp: datetime.datetime | None) -> int:
    assert stamp is not None
    return round(stamp.replace(tzinfo=stamp.tzinfo or datetime.UTC).timestamp() * 1000)


async def test_object_and_typed_variables_with_units(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, _ = open_server
    assert server.url == f"opc.tcp://127.0.0.1:{server.port}/iiotlab/"
    assert server.port > 0
    async with Client(server.url) as client:
        assert await client.get_namespace_index(NAMESPACE_URI) == 2
        tank = await client.nodes.objects.get_child("2:Tank")
        assert tank.nodeid == ua.NodeId.from_string("ns=2;s=Tank")
        names = {(await child.read_browse_name()).Name for child in await tank.get_children()}
        assert set(BROWSE_NAMES.values()) | {"Start", "Stop", "ResetFault"} <= names

        expected = {
            "Level": (ua.VariantType.Double, 1.5),
            "PumpOn": (ua.VariantType.Boolean, False),
            "BatchNumber": (ua.VariantType.Int32, 7),
            "Strokes": (ua.VariantType.UInt32, 100),
            "SerialNumber": (ua.VariantType.String, "TA0123456789"),
        }
        for browse_name, (variant_type, value) in expected.items():
            node = client.get_node(f"ns=2;s=Tank.{browse_name}")
            data = await node.read_data_value()
            assert data.Value is not None
            assert (data.Value.VariantType, data.Value.Value) == (variant_type, value)

        level = client.get_node("ns=2;s=Tank.Level")
        assert await level.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
        assert await level.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
        eu_range = await (await level.get_child("0:EURange")).read_value()
        assert (eu_range.Low, eu_range.High) == (0.0, 5.0)
        units = await (await level.get_child("0:EngineeringUnits")).read_value()
        assert units.DisplayName.Text == "m"
        assert units.UnitId == unit_code("MTR")
        assert units.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"
        setpoint_units = await client.get_node(
            "ns=2;s=Tank.PumpSpeedSetpoint.EngineeringUnits"
        ).read_value()
        assert setpoint_units.UnitId == unit_code("P1")


async def test_write_setpoint_goes_through_the_runtime(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, runtime = open_server
    async with Client(server.url) as client:
        setpoint = client.get_node("ns=2;s=Tank.PumpSpeedSetpoint")
        await setpoint.write_value(ua.DataValue(ua.Variant(62.5, ua.VariantType.Double)))
        assert runtime.values["pump_speed_sp"] == 62.5
        tag, value, source = runtime.writes[-1]
        assert (tag, value) == ("pump_speed_sp", 62.5)
        assert source.startswith("opcua:anonymous@127.0.0.1:")
        assert await setpoint.read_value() == 62.5
        # an integer written as Int64 (the client's default guess) fits an Int32 tag
        await client.get_node("ns=2;s=Tank.BatchNumber").write_value(12)
        assert runtime.values["batch"] == 12


@pytest.mark.parametrize(
    ("browse_name", "variant", "error"),
    [
        ("Level", ua.Variant(2.0, ua.VariantType.Double), ua.uaerrors.BadNotWritable),
        ("PumpSpeedSetpoint", ua.Variant(150.0, ua.VariantType.Double), ua.uaerrors.BadOutOfRange),
        (
            "PumpSpeedSetpoint",
            ua.Variant("fast", ua.VariantType.String),
            ua.uaerrors.BadTypeMismatch,
        ),
        ("PumpOn", ua.Variant(True, ua.VariantType.Boolean), ua.uaerrors.BadInvalidState),
    ],
)
async def test_refused_writes_return_bad_status(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
    browse_name: str,
    variant: ua.Variant,
    error: type[Exception],
) -> None:
    server, runtime = open_server
    runtime.interlocked = True
    before = dict(runtime.values)
    try:
        async with Client(server.url) as client:
            node = client.get_node(f"ns=2;s=Tank.{browse_name}")
            with pytest.raises(error):
                await node.write_value(ua.DataValue(variant))
            assert runtime.values == before
            # the server keeps serving
            assert await client.get_node("ns=2;s=Tank.Level").read_value() == before["level"]
    finally:
        runtime.interlocked = False


async def test_methods_call_the_runtime(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, runtime = open_server
    runtime.calls.clear()
    async with Client(server.url) as client:
        tank = client.get_node("ns=2;s=Tank")
        for method in ("Start", "Stop", "ResetFault"):
            assert await tank.call_method(f"2:{method}") is None
        assert [name for name, _ in runtime.calls] == ["Start", "Stop", "ResetFault"]
        assert all(source.startswith("opcua:anonymous@") for _, source in runtime.calls)
        runtime.interlocked = True
        try:
            with pytest.raises(ua.uaerrors.BadInvalidState):
                await tank.call_method("2:Start")
        finally:
            runtime.interlocked = False


async def test_subscription_gets_each_tick_with_its_timestamp(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, runtime = open_server
    async with Client(server.url) as client:
        changes = DataChanges()
        subscription = await client.create_subscription(20, changes)
        await subscription.subscribe_data_change(client.get_node("ns=2;s=Tank.Level"))
        for level in (2.25, 2.5):
            tick_ms = runtime.tick(level=level)
            data = await changes.next_with(level)
            assert epoch_ms(data.SourceTimestamp) == tick_ms
        await subscription.delete()


async def test_session_log_of_an_anonymous_none_session(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, _ = open_server
    before = len(server.sessions)
    async with Client(server.url) as client:
        await client.get_node("ns=2;s=Tank.Level").read_value()
        record = server.sessions[before]
        assert (record.policy, record.mode, record.user) == ("None", "None", None)
        assert record.client.startswith("127.0.0.1:")
        assert record.closed_ms is None
    await wait_for(lambda: server.sessions[before].closed_ms is not None)


async def test_sign_and_encrypt_with_a_user_is_logged(
    secure_server: OpcuaPlantServer, client_certificate: tuple[Path, Path]
) -> None:
    before = len(secure_server.sessions)
    client = await secure_client(secure_server, client_certificate)
    async with client:
        assert await client.get_node("ns=2;s=Tank.Level").read_value() == 1.5
        record = secure_server.sessions[before]
        assert (record.policy, record.mode, record.user) == (
            "Basic256Sha256",
            "SignAndEncrypt",
            "alice",
        )
        opened_ms = time.time_ns() // 1_000_000
        assert opened_ms - 10_000 < record.opened_ms <= opened_ms
    await wait_for(lambda: secure_server.sessions[before].closed_ms is not None)


async def test_sign_only_is_logged_as_sign(
    secure_server: OpcuaPlantServer, client_certificate: tuple[Path, Path]
) -> None:
    before = len(secure_server.sessions)
    client = await secure_client(secure_server, client_certificate, ua.MessageSecurityMode.Sign)
    async with client:
        await client.get_node("ns=2;s=Tank.Level").read_value()
    assert secure_server.sessions[before].mode == "Sign"


async def test_wrong_password_is_refused(
    secure_server: OpcuaPlantServer, client_certificate: tuple[Path, Path]
) -> None:
    before = len(secure_server.sessions)
    client = await secure_client(secure_server, client_certificate, user=("alice", "guess"))
    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        await client.connect()
    assert len(secure_server.sessions) == before
    refused = secure_server.rejected_sessions[-1]
    assert (refused.user, refused.error) == ("alice", "BadUserAccessDenied")


async def test_anonymous_is_refused_when_disabled(
    secure_server: OpcuaPlantServer, client_certificate: tuple[Path, Path]
) -> None:
    client = await secure_client(secure_server, client_certificate, user=None)
    with pytest.raises(ua.UaStatusCodeError):
        await client.connect()
    refused = secure_server.rejected_sessions[-1]
    assert (refused.mode, refused.user) == ("SignAndEncrypt", None)
    assert refused.error in ("BadIdentityTokenRejected", "BadUserAccessDenied")


async def test_none_policy_is_refused_when_not_offered(secure_server: OpcuaPlantServer) -> None:
    # discovery (GetEndpoints) still works over a None channel, without a session
    endpoints = await Client(secure_server.url).connect_and_get_server_endpoints()
    assert {endpoint.SecurityMode for endpoint in endpoints} == {
        ua.MessageSecurityMode.Sign,
        ua.MessageSecurityMode.SignAndEncrypt,
    }
    before = len(secure_server.sessions)
    client = Client(secure_server.url, timeout=10)
    client.set_user(ALICE[0])
    client.set_password(ALICE[1])
    with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
        await client.connect()
    assert len(secure_server.sessions) == before
    refused = secure_server.rejected_sessions[-1]
    assert (refused.policy, refused.mode, refused.error) == (
        "None",
        "None",
        "BadSecurityPolicyRejected",
    )


async def test_restart_keeps_the_port_and_drops_sessions(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, runtime = open_server
    port = server.port
    client = Client(server.url, timeout=2)
    await client.connect()
    before = len(server.sessions)
    live = server.sessions[before - 1]
    assert live.closed_ms is None
    await server.restart()
    assert server.port == port
    assert server.sessions[before - 1].closed_ms is not None
    with pytest.raises((ConnectionError, ua.UaError, asyncio.TimeoutError)):
        await client.get_node("ns=2;s=Tank.Level").read_value()
    await client.disconnect()
    async with Client(server.url) as again:
        runtime.tick(level=3.0)
        await wait_for_value(again, "ns=2;s=Tank.Level", 3.0)


async def wait_for(condition: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def wait_for_value(client: Client, node_id: str, value: object) -> None:
    node = client.get_node(node_id)
    deadline = time.monotonic() + 5
    while await node.read_value() != value:
        assert time.monotonic() < deadline, f"{node_id} never became {value!r}"
        await asyncio.sleep(0.02)


async def test_stop_is_safe_twice_and_start_again_keeps_the_port(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, runtime = open_server
    port = server.port
    await server.stop()
    await server.stop()
    assert not server.running
    await server.start()
    assert server.port == port
    async with Client(server.url) as client:
        runtime.tick(level=3.5)
        await wait_for_value(client, "ns=2;s=Tank.Level", 3.5)


async def test_session_activity_records_monitored_items_reads_and_browses(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    server, _ = open_server
    before = len(server.sessions)
    async with Client(server.url) as client:
        tank = await client.nodes.objects.get_child("2:Tank")  # TranslateBrowsePaths
        children = await tank.get_children()  # Browse
        level = client.get_node("ns=2;s=Tank.Level")
        await level.read_value()
        await level.read_browse_name()  # another attribute: not a value read
        subscription = await client.create_subscription(50, DataChanges())
        deadband = ua.DataChangeFilter()
        deadband.DeadbandType = ua.DeadbandType.Absolute
        deadband.DeadbandValue = 0.25
        requests = [
            subscription._make_monitored_item_request(
                level, ua.AttributeIds.Value, deadband, 1, ua.MonitoringMode.Reporting, 100
            ),
            subscription._make_monitored_item_request(
                client.get_node("ns=2;s=Tank.PumpOn"),
                ua.AttributeIds.Value,
                None,
                1,
                ua.MonitoringMode.Reporting,
                100,
            ),
        ]
        await subscription.create_monitored_items(requests)
        activity = server.sessions[before].activity
        assert children and activity.browses >= 2
        assert [node for _, node in activity.reads] == ["ns=2;s=Tank.Level"]
        assert activity.other_reads >= 1
        items = {item.node_id: item for item in activity.monitored_items}
        assert (
            items["ns=2;s=Tank.Level"].deadband_type,
            items["ns=2;s=Tank.Level"].deadband_value,
        ) == (
            "absolute",
            0.25,
        )
        assert items["ns=2;s=Tank.PumpOn"].deadband_type == "none"
        assert items["ns=2;s=Tank.Level"].sampling_interval_ms == 100.0
        await subscription.delete()


async def test_monitored_items_keep_their_own_copy_of_each_value(
    open_server: tuple[OpcuaPlantServer, FakeTankRuntime],
) -> None:
    """simulators/opcua/monitoring.py: a shallow copy per monitored item, not a deep one;
    a deadband still compares each new value with the one before it."""
    from asyncua.server.monitored_item_service import MonitoredItemValues

    from simulators.opcua import monitoring

    assert MonitoredItemValues.set_current_datavalue is monitoring._set_current_datavalue
    values = MonitoredItemValues()
    written = ua.DataValue(ua.Variant(2.5, ua.VariantType.Double))
    values.set_current_datavalue(written)
    kept = values.get_current_datavalue()
    assert kept == written and kept is not written
    server, runtime = open_server
    async with Client(server.url) as client:
        changes = DataChanges()
        subscription = await client.create_subscription(20, changes)
        await subscription.deadband_monitor(client.get_node("ns=2;s=Tank.Level"), 0.2)
        runtime.tick(level=3.0)
        await changes.next_with(3.0)
        runtime.tick(level=3.1)  # within 0.2 of 3.0: not reported
        await asyncio.sleep(0.2)
        runtime.tick(level=3.5)
        data = await asyncio.wait_for(changes.queue.get(), timeout=5)
        assert data.Value is not None and data.Value.Value == 3.5
        await subscription.delete()
