"""Ingestion of contract v1 messages fed as raw (topic, bytes): validate, deduplicate,
store in batches, evaluate rules; anything invalid goes to the dead-letter store.

Hostile data and hostile neighbours (issue #12): a tenant over its rate has messages
dropped and counted before they queue; an oversized message queues only its kept prefix;
one bad message is dead-lettered on its own; a batch the store refuses is retried message
by message, so valid messages never go down with a bad one; a message counts as seen
(for duplicate detection) only once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from iiot_platform.alarms import Alarm
from iiot_platform.commands import CommandBook
from iiot_platform.dead_letters import DeadLetter
from iiot_platform.documents import DocumentStore
from iiot_platform.events import EventHub
from iiot_platform.limits import TenantRateLimiter
from iiot_platform.registry import DeviceRegistry
from iiot_platform.rules import RuleEngine
from iiot_platform.settings import PlatformSettings
from iiot_platform.stores.base import TelemetryRecord, TelemetryStore
from iiotlab.errors import PayloadError
from iiotlab.payloads import CommandAck, Status, Telemetry, decode_payload, parse_topic

_log = logging.getLogger(__name__)
_OUTBOUND = ("cmd", "alarm")  # topics the platform publishes itself
_NAME_CHARS = 64  # tenant and device of a dead letter
_TEXT_CHARS = 1024  # its topic and reason
_SLICE_S = 0.01  # longest stretch of decoding before the event loop gets a turn
_STORE_DOWN_AFTER = 5  # single writes failing in a row: the store is down, stop retrying


@dataclass(frozen=True)
class RawMessage:
    """A received message; `payload` is only a prefix when `original_size` is larger."""

    topic: str
    payload: bytes
    received_ms: int
    original_size: int | None = None

    @property
    def size(self) -> int:
        return self.original_size if self.original_size is not None else len(self.payload)


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
    failed_batches: int = 0
    store_refused: int = 0
    lost_batches: int = 0
    lost_messages: int = 0
    oversized: int = 0
    rate_limited: int = 0
    rate_limited_by_tenant: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    queued_bytes: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None


@dataclass(frozen=True)
class _Pending:
    record: TelemetryRecord
    message: RawMessage


@dataclass
class _Batch:
    pending: list[_Pending] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)  # raised or cleared by status messages


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _guess_owner(topic: str) -> tuple[str, str]:
    """Tenant and device of a topic that did not parse, for dead-letter visibility."""
    parts = topic.split("/", 3)
    if len(parts) >= 2 and parts[0] == "iiot":
        return parts[1], parts[2] if len(parts) > 2 else ""
    return "", ""


class Ingestor:
    """A bounded queue (messages and bytes) in front of one batch loop; `submit` waits
    when the queue is full, and drops a message of a tenant over its rate."""

    def __init__(
        self,
        *,
        store: TelemetryStore,
        documents: DocumentStore,
        registry: DeviceRegistry,
        rules: RuleEngine,
        commands: CommandBook,
        on_alarms: Callable[[list[Alarm]], Awaitable[None]],
        settings: PlatformSettings,
        events: EventHub | None = None,
    ) -> None:
        self._store, self._documents, self._registry = store, documents, registry
        self._events = events or EventHub()
        self._rules, self._commands, self._on_alarms = rules, commands, on_alarms
        self._settings = settings
        self._queue: asyncio.Queue[RawMessage] = asyncio.Queue(settings.queue_size)
        self._room = asyncio.Event()
        self.limiter = TenantRateLimiter(
            settings.ingest_rate_per_tenant, settings.ingest_burst_per_tenant
        )
        self.stats = IngestStats(rate_limited_by_tenant=self.limiter.dropped)

    async def submit(self, topic: str, payload: bytes, received_ms: int) -> None:
        self.stats.received += 1
        if not self.limiter.allow(_guess_owner(topic)[0][:_NAME_CHARS]):
            self.stats.rate_limited += 1
            return
        size = len(payload)
        if size > self._settings.max_message_bytes:
            payload = payload[: self._settings.dead_letter_payload_bytes]
        while self.stats.queued_bytes and (
            self.stats.queued_bytes + len(payload) > self._settings.queue_bytes
        ):
            self._room.clear()
            await self._room.wait()
        self.stats.queued_bytes += len(payload)
        await self._queue.put(RawMessage(topic, payload, received_ms, size))
        self.stats.queued = self._queue.qsize()

    async def join(self) -> None:
        """Return once everything submitted so far is processed."""
        await self._queue.join()

    async def run(self) -> None:
        """The batch loop: take what is queued (up to batch_size) and process it together."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._settings.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.process(batch)
            except Exception as error:  # process() handles its own; this is a bug
                self.stats.lost_batches += 1
                self.stats.lost_messages += len(batch)
                self._failed(f"ingestion batch of {len(batch)} messages lost", error)
            finally:
                for _ in batch:
                    self._queue.task_done()
                self.stats.queued_bytes -= sum(len(m.payload) for m in batch)
                self.stats.queued = self._queue.qsize()
                self._room.set()

    async def process(self, messages: list[RawMessage]) -> None:
        batch = _Batch()
        paused = time.monotonic()
        for message in messages:
            if time.monotonic() - paused > _SLICE_S:  # let servers sharing the loop run
                await asyncio.sleep(0)
                paused = time.monotonic()
            try:
                self._classify(message, batch)
            except Exception as error:
                self._failed("a message could not be processed", error)
                reason = f"the platform could not process this message ({_describe(error)})"
                self._dead(message, batch, reason)
        self.stats.batches += 1
        stored = await self._store_batch(batch)
        alarms = batch.alarms + self._accept(stored)
        await self._save_dead_letters(batch.letters)
        try:
            await self._registry.flush()
            if alarms:
                await self._on_alarms(alarms)
        except Exception as error:
            self._failed("saving devices or alarms failed", error)

    async def _store_batch(self, batch: _Batch) -> list[_Pending]:
        """Write the batch at once; when that fails, message by message."""
        if not batch.pending:
            return []
        try:
            self.stats.points_stored += await self._store.write([p.record for p in batch.pending])
            return batch.pending
        except Exception as error:
            self.stats.failed_batches += 1
            self._failed(f"a batch of {len(batch.pending)} messages failed to store", error)
        stored: list[_Pending] = []
        failures = 0
        for pending in batch.pending:
            if failures >= _STORE_DOWN_AFTER:
                reason = "the store is unavailable; not stored (see /api/health)"
                self._refused(pending, batch, reason)
                continue
            try:
                self.stats.points_stored += await self._store.write([pending.record])
            except Exception as error:
                failures += 1
                self._refused(pending, batch, f"the store refused this message: {_describe(error)}")
            else:
                failures = 0
                stored.append(pending)
        return stored

    def _refused(self, pending: _Pending, batch: _Batch, reason: str) -> None:
        self.stats.store_refused += 1
        record = pending.record
        self._dead(pending.message, batch, reason, record.tenant, record.device)

    def _accept(self, stored: list[_Pending]) -> list[Alarm]:
        """Count stored messages as seen (a repeat inside the batch is a duplicate), then
        run the rules on them."""
        alarms: list[Alarm] = []
        for pending in stored:
            record = pending.record
            received_ms = pending.message.received_ms
            if not self._registry.accept(record.tenant, record.device, record.seq, received_ms):
                self.stats.duplicates += 1
                continue
            if self._events.listening:
                self._events.publish(
                    "telemetry",
                    record.tenant,
                    {
                        "tenant": record.tenant,
                        "device": record.device,
                        "seq": record.seq,
                        "ts": record.ts,
                        "metrics": record.metrics,
                    },
                )
            try:
                alarms.extend(self._rules.evaluate(record))
            except Exception as error:
                self._failed(f"rules on {record.tenant}/{record.device} failed", error)
        return alarms

    async def _save_dead_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        try:
            await self._documents.dead_letters.add(letters)
        except Exception as error:
            self.stats.lost_messages += len(letters)
            self._failed(f"{len(letters)} dead letters could not be saved", error)
        else:
            self.stats.dead_letters += len(letters)
            if self._events.listening:
                counts: dict[str, int] = {}
                for letter in letters:
                    counts[letter.tenant] = counts.get(letter.tenant, 0) + 1
                for tenant, count in counts.items():
                    self._events.publish("dead_letters", tenant, {"tenant": tenant, "count": count})

    def _failed(self, what: str, error: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = _cut(f"{what}: {_describe(error)}", _TEXT_CHARS)
        self.stats.last_error_ms = int(time.time() * 1000)
        _log.error("%s", self.stats.last_error, exc_info=error)

    def _classify(self, message: RawMessage, batch: _Batch) -> None:
        try:
            tenant, device, kind = parse_topic(message.topic)
        except PayloadError as error:
            self._dead(message, batch, str(error))
            return
        if kind in _OUTBOUND:
            return
        limit = self._settings.max_message_bytes
        if message.size > limit:
            self.stats.oversized += 1
            reason = (
                f"payload is {message.size} bytes, over the platform's limit of {limit} bytes"
                " (setting max_message_bytes): send smaller messages;"
                f" only the first {len(message.payload)} bytes are kept here"
            )
            self._dead(message, batch, reason, tenant, device)
            return
        try:
            payload = decode_payload(
                kind, message.payload, max_bytes=limit, max_depth=self._settings.max_json_depth
            )
        except PayloadError as error:
            self._dead(message, batch, str(error), tenant, device)
            return
        if isinstance(payload, Telemetry):
            self._telemetry(message, payload, tenant, device, batch)
        elif isinstance(payload, Status):
            self.stats.status += 1
            online = payload.state == "online"
            self._registry.set_status(tenant, device, online, payload.ts)
            self._events.publish(
                "status",
                tenant,
                {"tenant": tenant, "device": device, "online": online, "ts": payload.ts},
            )
            # arrival time: a Last Will's ts is when its client connected, not when it left
            batch.alarms.extend(
                self._rules.evaluate_status(tenant, device, online, message.received_ms)
            )
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
        if self._registry.seen(tenant, device, payload.seq):
            self._registry.accept(tenant, device, payload.seq, message.received_ms)
            self.stats.duplicates += 1
            return
        record = TelemetryRecord(
            tenant, device, payload.seq, payload.ts, payload.metrics, payload.replayed
        )
        batch.pending.append(_Pending(record, message))

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
            DeadLetter(
                tenant=_cut(tenant, _NAME_CHARS),
                device=_cut(device, _NAME_CHARS),
                topic=_cut(message.topic, _TEXT_CHARS),
                received_ms=message.received_ms,
                reason=_cut(reason, _TEXT_CHARS),
                payload=message.payload,
                size=message.size,
            )
        )


def _describe(error: BaseException) -> str:
    return _cut(f"{type(error).__name__}: {error}", 300)
