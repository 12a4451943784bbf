"""The running platform: stores, registry, rules, commands, identifiers, MQTT link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

from iiot_platform.alarms import Alarm, AlarmBook
from iiot_platform.auth import TokenBook, TokenInfo
from iiot_platform.commands import CommandBook, CommandRecord
from iiot_platform.dead_letters import DeadLetterLimits
from iiot_platform.documents import DocumentStore
from iiot_platform.events import EventHub
from iiot_platform.identifiers import IdentifierRecord, IdentifierRegistry, Prefix
from iiot_platform.ingest import Ingestor
from iiot_platform.registry import DeviceRegistry
from iiot_platform.rules import Rule, RuleEngine
from iiot_platform.settings import PlatformSettings
from iiot_platform.stores import TelemetryStore, make_store
from iiotlab.lifecycle import Service
from iiotlab.mqtt import MqttClient
from iiotlab.payloads import Alarm as AlarmPayload
from iiotlab.payloads import encode_payload, topic

_log = logging.getLogger(__name__)


class PlatformService(Service):
    """Owns every long-lived part; `start()`/`stop()` (safe twice) or `async with`."""

    def __init__(self, settings: PlatformSettings, store: TelemetryStore | None = None) -> None:
        self.settings = settings
        self.documents = DocumentStore(
            settings.data_dir / "platform.sqlite",
            DeadLetterLimits(
                total=settings.dead_letter_limit,
                per_tenant=settings.dead_letter_tenant_limit,
                payload_bytes=settings.dead_letter_payload_bytes,
            ),
        )
        self.store = store or make_store(settings)
        self.registry = DeviceRegistry(self.documents)
        self.alarms = AlarmBook()
        self.rules = RuleEngine(self.alarms)
        self.commands = CommandBook()
        self.identifiers = IdentifierRegistry()
        self.tokens = TokenBook(settings.tokens)
        self.events = EventHub()
        self.ingestor = Ingestor(
            store=self.store,
            documents=self.documents,
            registry=self.registry,
            rules=self.rules,
            commands=self.commands,
            on_alarms=self.on_alarms,
            settings=settings,
            events=self.events,
        )
        self.mqtt: MqttClient | None = None
        self.started_ms = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._tasks:
            return
        await self.documents.start()
        await self.store.start()
        await self._load()
        self._tasks.append(asyncio.create_task(self.ingestor.run(), name="ingest"))
        self._tasks.append(asyncio.create_task(self._stale_loop(), name="stale-rules"))
        if self.settings.mqtt_enabled:
            await self._connect_mqtt()
        self.started_ms = int(time.time() * 1000)

    async def _connect_mqtt(self) -> None:
        client = MqttClient(
            self.settings.broker_url,
            client_id=self.settings.client_id,
            ca_file=self.settings.broker_ca_file,
            clean_start=not self.settings.mqtt_persistent_session,
        )
        await client.connect()
        await client.subscribe(self.settings.subscribe_filter, qos=1)
        self.mqtt = client
        self._tasks.append(asyncio.create_task(self._receive(client), name="mqtt-receive"))

    async def _receive(self, client: MqttClient) -> None:
        async for message in client.messages():
            await self.ingestor.submit(message.topic, message.payload, message.received_ms)

    async def _load(self) -> None:
        await self.registry.load()
        self.alarms.load([Alarm.model_validate(d) for d in await self.documents.all("alarm")])
        self.rules.load([Rule.model_validate(d) for d in await self.documents.all("rule")])
        self.commands.load(
            [CommandRecord.model_validate(d) for d in await self.documents.all("command")]
        )
        self.identifiers.load(
            [Prefix.model_validate(d) for d in await self.documents.all("prefix")],
            [IdentifierRecord.model_validate(d) for d in await self.documents.all("identifier")],
        )
        stored = await self.documents.all("token")
        self.tokens.load([(d["digest"], TokenInfo.model_validate(d["info"])) for d in stored])

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        client, self.mqtt = self.mqtt, None
        try:
            if client is not None:
                await client.disconnect()
            if tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ingestor.join(), timeout=5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.save()
        finally:
            await self.store.stop()
            await self.documents.stop()

    async def save(self) -> None:
        """Persist changed alarms, commands and devices."""
        alarm_ids, self.alarms.dirty = self.alarms.dirty, set()
        await self.put_models("alarm", [a for i in alarm_ids if (a := self.alarms.get(i))])
        command_ids, self.commands.dirty = self.commands.dirty, set()
        await self.put_models("command", [c for i in command_ids if (c := self.commands.get(i))])
        await self.registry.flush()

    async def put_models(self, kind: str, models: list[Any]) -> None:
        key = {
            "alarm": "id",
            "command": "id",
            "rule": "id",
            "prefix": "prefix",
            "identifier": "identifier",
        }[kind]
        await self.documents.put_many(
            kind, [(getattr(m, key), m.tenant, m.model_dump(mode="json")) for m in models]
        )

    async def publish(self, topic_name: str, payload: bytes) -> None:
        if self.mqtt is None:
            raise RuntimeError("the platform has no MQTT connection")
        await self.mqtt.publish(topic_name, payload, qos=1)

    def alarms_changed(self, tenants: set[str]) -> None:
        """Tell the open event streams that these tenants' alarms changed."""
        for tenant in tenants:
            self.events.publish("alarms", tenant, {"tenant": tenant})

    async def on_alarms(self, alarms: list[Alarm]) -> None:
        """Publish each alarm transition on iiot/{tenant}/{device}/alarm and persist it."""
        self.alarms_changed({alarm.tenant for alarm in alarms})
        for alarm in alarms:
            state: Literal["active", "cleared"] = (
                "cleared" if alarm.state == "cleared" else "active"
            )
            ts = alarm.cleared_ms if alarm.state == "cleared" else alarm.raised_ms
            value = alarm.cleared_value if alarm.state == "cleared" else alarm.value
            payload = AlarmPayload(
                v=1,
                rule=alarm.rule,
                state=state,
                metric=alarm.metric or "",
                value=value,
                ts=ts or 0,
            )
            if self.mqtt is not None:
                try:
                    await self.publish(
                        topic(alarm.tenant, alarm.device, "alarm"), encode_payload(payload)
                    )
                except Exception as error:
                    _log.warning("alarm %s not published: %s", alarm.id, error)
        await self.save()

    async def _stale_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stale_check_interval_s)
            last_seen = {
                (d.tenant, d.device): d.last_seen_ms
                for d in self.registry.select()
                if d.last_seen_ms is not None
            }
            events = self.rules.check_stale(int(time.time() * 1000), last_seen)
            if events:
                await self.on_alarms(events)
            else:
                await self.save()
