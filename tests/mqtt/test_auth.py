"""Users, passwords and the tenant ACL (iiot/<tenant>/#), on every broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from mqtt_helpers import StartBroker, connected, receive, receive_until

from iiotlab.mqtt import (
    BrokerConfig,
    BrokerKind,
    BrokerUser,
    MqttClient,
    MqttConnectError,
    MqttSubscribeError,
)

pytestmark = pytest.mark.integration

ALICE = BrokerUser("alice", "alice-pw", "tenant-a")
BOB = BrokerUser("bob", "b:ob@/pw", "tenant-b")  # characters that need percent-encoding
ADMIN = BrokerUser("admin", "admin-pw", None)
USERS = BrokerConfig(users=(ALICE, BOB, ADMIN))


async def test_anonymous_is_refused_when_users_exist(start_broker: StartBroker) -> None:
    async with start_broker(USERS) as broker:
        client = MqttClient(broker.url, client_id="anon")
        with pytest.raises(MqttConnectError, match="refused the connection"):
            await client.connect()
        assert not client.connected


async def test_wrong_password_is_refused_with_a_hint(start_broker: StartBroker) -> None:
    async with start_broker(USERS) as broker:
        client = MqttClient(broker.url_for(BrokerUser("alice", "wrong", "tenant-a")), client_id="c")
        with pytest.raises(MqttConnectError, match="user name and password"):
            await client.connect()


async def test_unknown_user_is_refused(start_broker: StartBroker) -> None:
    async with start_broker(USERS) as broker:
        client = MqttClient(broker.url_for(BrokerUser("mallory", "x", "x")), client_id="c")
        with pytest.raises(MqttConnectError):
            await client.connect()


async def test_tenant_cannot_read_another_tenants_topics(
    start_broker: StartBroker, broker_kind: BrokerKind
) -> None:
    async with (
        start_broker(USERS) as broker,
        connected(broker.url_for(ALICE), "alice") as alice,
        connected(broker.url_for(ADMIN), "admin") as admin,
    ):
        if broker_kind == "embedded":
            with pytest.raises(MqttSubscribeError, match="iiot/tenant-b/#"):
                await alice.subscribe("iiot/tenant-b/#")
        else:
            # Mosquitto 2.0 grants the SUBACK and then filters every delivery by the ACL.
            with contextlib.suppress(MqttSubscribeError):
                await alice.subscribe("iiot/tenant-b/#")
        for refused in ("#", "iiot/#", "iiot/+/tank-1/telemetry"):
            with contextlib.suppress(MqttSubscribeError):
                await alice.subscribe(refused)
        await alice.subscribe("iiot/tenant-a/#")

        await admin.publish("iiot/tenant-b/tank-1/telemetry", b"secret")
        await admin.publish("iiot/tenant-a/tank-1/telemetry", b"mine")
        seen = await receive_until(alice, "iiot/tenant-a/tank-1/telemetry")
    assert [m.payload for m in seen] == [b"mine"]


async def test_tenant_publish_outside_its_tree_is_dropped(start_broker: StartBroker) -> None:
    async with (
        start_broker(USERS) as broker,
        connected(broker.url_for(BOB), "bob") as bob,
        connected(broker.url_for(ALICE), "alice") as alice,
    ):
        await bob.subscribe("iiot/tenant-b/#")
        # The broker acknowledges and silently drops it (MQTT 3.1.1 has no PUBACK error).
        await alice.publish("iiot/tenant-b/tank-1/cmd", b"forged")
        await alice.publish("iiot/other", b"forged")
        async with connected(broker.url_for(ADMIN), "admin") as admin:
            await admin.publish("iiot/tenant-b/marker", b"m")
        seen = await receive_until(bob, "iiot/tenant-b/marker")
    assert [m.payload for m in seen] == [b"m"]


async def test_admin_sees_every_tenant(start_broker: StartBroker) -> None:
    async with (
        start_broker(USERS) as broker,
        connected(broker.url_for(ADMIN), "admin") as admin,
        connected(broker.url_for(ALICE), "alice") as alice,
        connected(broker.url_for(BOB), "bob") as bob,
    ):
        await admin.subscribe("iiot/#")
        await alice.publish("iiot/tenant-a/tank-1/telemetry", b"a")
        await bob.publish("iiot/tenant-b/boiler-1/telemetry", b"b")
        received = {(await receive(admin)).payload for _ in range(2)}
    assert received == {b"a", b"b"}


async def test_anonymous_allowed_beside_users_when_configured(start_broker: StartBroker) -> None:
    config = BrokerConfig(users=(ALICE,), allow_anonymous=True)
    async with (
        start_broker(config) as broker,
        connected(broker.url, "anon") as anonymous,
        connected(broker.url_for(ALICE), "alice") as alice,
    ):
        await anonymous.subscribe("iiot/#")
        await alice.publish("iiot/tenant-a/x", b"1")
        assert (await receive(anonymous)).payload == b"1"


async def test_no_users_means_open_broker_for_any_name(start_broker: StartBroker) -> None:
    async with start_broker(BrokerConfig()) as broker:
        url = broker.url_for(BrokerUser("whoever", "whatever", "t"))
        async with connected(url, "c") as client:
            await client.subscribe("#")
            await client.publish("iiot/t/x", b"1")
            assert (await asyncio.wait_for(receive(client), 5)).payload == b"1"


async def test_connect_never_replays_another_tenants_retained_messages(
    start_broker: StartBroker,
) -> None:
    async with (
        start_broker(USERS) as broker,
        connected(broker.url_for(ADMIN), "observer") as observer,
    ):
        await observer.subscribe("iiot/#", qos=1)
        async with connected(broker.url_for(BOB), "bob-gw") as bob:
            await bob.publish("iiot/tenant-b/pump-1/status", b"bob-secret", retain=True)
        async with connected(broker.url_for(ALICE), "alice-gw") as alice:
            await alice.subscribe("iiot/tenant-a/#", qos=1)
            with pytest.raises(TimeoutError):
                await receive(alice, within=1.0)
