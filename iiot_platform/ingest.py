"""Ingestion of contract v1 messages fed as raw (topic, bytes): validate, deduplicate,
store in batches, evaluate rules; anything invalid goes to the dead-letter store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from iiot_platform.alarms import Alarm
from iiot_platform.commands import CommandBook
from iiot_platform.documents import DeadLetter, DocumentStore
from iiot_platform.registry import DeviceRegistry
from iiot_platform.rules import RuleEngine
from iiot_platform.stores.base import TelemetryRecord, TelemetryStore
from iiotlab.errors import PayloadError
from iiotlab.payloads import CommandAck, Status, Telemetry, decode_payload, parse_topic

_log = logging.getLogger(__name__)
_OUTBOUND = ("cmd", "alarm")  # topics the platform publishes itself


@dataclass(frozen=True)
class RawMessage:
    topic: str
    payload: bytes
    received_ms: int


@dataclass
class IngestStats:
    received: int = 0
    telemetry: int = 0
    points_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    status: int = 0
    acks: int = 0
    batches: int = 0
    errors: int = 0


@dataclass
class _Batch:
    records: list[TelemetryRecord] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


def _guess_owner(topic: str) -> tuple[str, str]:
    """Tenant and device of a topic that did not parse, for dead-letter visibility."""
    parts = topic.split("/")
    if len(parts) >= 2 and parts[0] == "iiot":
        return parts[1], parts[2] if len(parts) > 2 else ""
    return "", ""


class Ingestor:
    """A bounded queue in front of one batch loop; `submit` waits when the queue is full."""

    def __init__(
        self,
        *,
        store: TelemetryStore,
        documents: DocumentStore,
        registry: DeviceRegistry,
        rules: RuleEngine,
        commands: CommandBook,
        on_alarms: Callable[[list[Alarm]], Awaitable[None]],
        batch_size: int = 2000,
        queue_size: int = 50_000,
    ) -> None:
        self._store, self._documents, self._registry = store, documents, registry
        self._rules, self._commands, self._on_alarms = rules, commands, on_alarms
        self._batch_size = batch_size
        self._queue: asyncio.Queue[RawMessage] = asyncio.Queue(queue_size)
        self.stats = IngestStats()

    async def submit(self, topic: str, payload: bytes, received_ms: int) -> None:
        await self._queue.put(RawMessage(topic, payload, received_ms))

    async def join(self) -> None:
        """Return once everything submitted so far is processed."""
        await self._queue.join()

    async def run(self) -> None:
        """The batch loop: take what is queued (up to batch_size) and process it together."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.process(batch)
            except Exception:
                self.stats.errors += 1
                _log.exception("ingestion batch of %d messages failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def process(self, messages: list[RawMessage]) -> None:
        batch = _Batch()
        for message in messages:
            self._classify(message, batch)
        self.stats.received += len(messages)
        self.stats.batches += 1
        self.stats.points_stored += await self._store.write(batch.records)
        alarms = [event for record in batch.records for event in self._rules.evaluate(record)]
        await self._documents.add_dead_letters(batch.letters)
        self.stats.dead_letters += len(batch.letters)
        await self._registry.flush()
        if alarms:
            await self._on_alarms(alarms)

    def _classify(self, message: RawMessage, batch: _Batch) -> None:
        try:
            tenant, device, kind = parse_topic(message.topic)
        except PayloadError as error:
            self._dead(message, batch, str(error))
            return
        if kind in _OUTBOUND:
            return
        try:
            payload = decode_payload(kind, message.payload)
        except PayloadError as error:
            self._dead(message, batch, str(error), tenant, device)
            return
        if isinstance(payload, Telemetry):
            self._telemetry(message, payload, tenant, device, batch)
        elif isinstance(payload, Status):
            self.stats.status += 1
            self._registry.set_status(tenant, device, payload.state == "online", payload.ts)
        elif isinstance(payload, CommandAck):
            self.stats.acks += 1
            if self._commands.record_ack(tenant, device, payload) is None:
                reason = f"cmd/ack: id {payload.id!r} is not a command sent to {device!r}"
                self._dead(message, batch, reason, tenant, device)

    def _telemetry(
        self, message: RawMessage, payload: Telemetry, tenant: str, device: str, batch: _Batch
    ) -> None:
        if payload.device != device:
            reason = f"telemetry: field 'device' is {payload.device!r}, the topic says {device!r}"
            self._dead(message, batch, reason, tenant, device)
            return
        self.stats.telemetry += 1
        if not self._registry.accept(tenant, device, payload.seq, message.received_ms):
            self.stats.duplicates += 1
            return
        batch.records.append(
            TelemetryRecord(
                tenant, device, payload.seq, payload.ts, payload.metrics, payload.replayed
            )
        )

    @staticmethod
    def _dead(
        message: RawMessage,
        batch: _Batch,
        reason: str,
        tenant: str | None = None,
        device: str | None = None,
    ) -> None:
        if tenant is None or device is None:
            tenant, device = _guess_owner(message.topic)
        batch.letters.append(
            DeadLetter(tenant, device, message.topic, message.received_ms, reason, message.payload)
        )
