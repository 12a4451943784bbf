"""Commands to devices: POSTed through the API, published on the cmd topic, acknowledged
by the device (gateway) on cmd/ack."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from iiotlab.payloads import Command, CommandAck, encode_payload, topic

Publish = Callable[[str, bytes], Awaitable[None]]
CommandState = Literal["pending", "acknowledged", "failed", "unpublished"]


class CommandSpec(BaseModel):
    """Body of POST /api/devices/{tenant}/{device}/commands."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1, max_length=64)
    value: bool | int | float | str


class CommandRecord(BaseModel):
    id: str
    tenant: str
    device: str
    metric: str
    value: bool | int | float | str
    state: CommandState
    sent_ms: int
    ack_ms: int | None = None
    ok: bool | None = None
    error: str | None = None
    issued_by: str = ""


class CommandBook:
    """Commands by id; `record_ack` completes one and wakes whoever waits for it."""

    def __init__(self, keep: int = 5000) -> None:
        self._commands: dict[str, CommandRecord] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._keep = keep
        self.dirty: set[str] = set()

    def load(self, records: list[CommandRecord]) -> None:
        self._commands.update({r.id: r for r in records})

    async def send(
        self, tenant: str, device: str, spec: CommandSpec, by: str, publish: Publish
    ) -> CommandRecord:
        record = CommandRecord(
            id=str(uuid.uuid4()),
            tenant=tenant,
            device=device,
            metric=spec.metric,
            value=spec.value,
            state="pending",
            sent_ms=int(time.time() * 1000),
            issued_by=by,
        )
        self._commands[record.id] = record
        self._waiters[record.id] = asyncio.Event()
        self.dirty.add(record.id)
        payload = Command(v=1, id=record.id, metric=spec.metric, value=spec.value)
        try:
            await publish(topic(tenant, device, "cmd"), encode_payload(payload))
        except Exception as error:
            record.state, record.error = "unpublished", f"not published: {error}"
        self._trim()
        return record

    def record_ack(self, tenant: str, device: str, ack: CommandAck) -> CommandRecord | None:
        record = self._commands.get(ack.id)
        if record is None or (record.tenant, record.device) != (tenant, device):
            return None
        record.ack_ms, record.ok, record.error = int(time.time() * 1000), ack.ok, ack.error
        record.state = "acknowledged" if ack.ok else "failed"
        self.dirty.add(record.id)
        waiter = self._waiters.pop(record.id, None)
        if waiter is not None:
            waiter.set()
        return record

    async def wait(self, command_id: str, seconds: float) -> CommandRecord:
        """The command once acknowledged, or as it is after `seconds`."""
        waiter = self._waiters.get(command_id)
        if waiter is not None and seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), seconds)
        return self._commands[command_id]

    def get(self, command_id: str) -> CommandRecord | None:
        return self._commands.get(command_id)

    def select(self, tenant: str | None, device: str | None = None) -> list[CommandRecord]:
        records = [
            r
            for r in self._commands.values()
            if (tenant is None or r.tenant == tenant) and (device is None or r.device == device)
        ]
        return sorted(records, key=lambda r: r.sent_ms, reverse=True)

    def _trim(self) -> None:
        while len(self._commands) > self._keep:
            oldest = next(iter(self._commands))
            self._commands.pop(oldest)
            self._waiters.pop(oldest, None)
