"""Device registry: devices appear on their first message, can be registered with
metadata (units and descriptions from a datasheet), and go online/offline by status."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from iiot_platform.documents import DocumentStore
from iiotlab.datasheet import Datasheet

_SEQ_WINDOW = 4096


class MetricInfo(BaseModel):
    unit: str = ""
    description: str = ""
    range: tuple[float, float] | None = None


class Device(BaseModel):
    model_config = ConfigDict(validate_assignment=False)

    tenant: str
    device: str
    registered: bool = False
    description: str = ""
    plant: str | None = None
    metrics: dict[str, MetricInfo] = Field(default_factory=dict)
    online: bool = False
    status_ts: int | None = None
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    last_seq: int | None = None
    messages: int = 0
    duplicates: int = 0
    gaps: int = 0


class DeviceRegistration(BaseModel):
    """Body of PUT /api/devices/{tenant}/{device}."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    metrics: dict[str, MetricInfo] = Field(default_factory=dict)
    datasheet: dict[str, Any] | None = Field(
        default=None, description="a datasheet JSON (iiotlab datasheet --format json)"
    )


def metrics_of(datasheet: Datasheet) -> dict[str, MetricInfo]:
    return {
        tag.name: MetricInfo(unit=tag.unit, description=tag.description, range=tag.range)
        for tag in datasheet.tags
    }


class DeviceRegistry:
    """In-memory view backed by the document store; `flush()` persists what changed."""

    def __init__(self, documents: DocumentStore) -> None:
        self._documents = documents
        self._devices: dict[tuple[str, str], Device] = {}
        self._seen: dict[tuple[str, str], tuple[set[int], deque[int]]] = {}
        self._dirty: set[tuple[str, str]] = set()

    async def load(self) -> None:
        for doc in await self._documents.all("device"):
            device = Device.model_validate(doc)
            device.online = False if device.status_ts is None else device.online
            self._devices[(device.tenant, device.device)] = device

    def get(self, tenant: str, device: str) -> Device | None:
        return self._devices.get((tenant, device))

    def select(self, tenant: str | None = None) -> list[Device]:
        devices = [d for d in self._devices.values() if tenant is None or d.tenant == tenant]
        return sorted(devices, key=lambda d: (d.tenant, d.device))

    def _ensure(self, tenant: str, device: str, now_ms: int) -> Device:
        key = (tenant, device)
        entry = self._devices.get(key)
        if entry is None:
            entry = Device(tenant=tenant, device=device, first_seen_ms=now_ms)
            self._devices[key] = entry
        self._dirty.add(key)
        return entry

    def seen(self, tenant: str, device: str, seq: int) -> bool:
        """Whether (device, seq) is among the device's last stored messages."""
        found = self._seen.get((tenant, device))
        return found is not None and seq in found[0]

    def accept(self, tenant: str, device: str, seq: int, received_ms: int) -> bool:
        """Record a stored telemetry message; False when (device, seq) was seen already
        (counted as a duplicate). Call it only once the message is stored."""
        key = (tenant, device)
        seen, order = self._seen.setdefault(key, (set(), deque()))
        entry = self._ensure(tenant, device, received_ms)
        entry.last_seen_ms = received_ms
        if seq in seen:
            entry.duplicates += 1
            return False
        seen.add(seq)
        order.append(seq)
        if len(order) > _SEQ_WINDOW:
            seen.discard(order.popleft())
        if entry.last_seq is not None and seq > entry.last_seq + 1:
            entry.gaps += seq - entry.last_seq - 1
        if entry.last_seq is None or seq > entry.last_seq:
            entry.last_seq = seq
        entry.messages += 1
        return True

    def set_status(self, tenant: str, device: str, online: bool, ts: int) -> bool:
        """Apply a status message in arrival order; True when the online state changed.

        Arrival order, not `ts`: a Last Will carries the time its client connected, so it
        is older than the `online` message it follows.
        """
        entry = self._ensure(tenant, device, int(time.time() * 1000))
        changed = entry.online != online
        entry.online, entry.status_ts = online, ts
        return changed

    def register(self, tenant: str, device: str, registration: DeviceRegistration) -> Device:
        entry = self._ensure(tenant, device, int(time.time() * 1000))
        entry.registered = True
        entry.description = registration.description or entry.description
        if registration.datasheet is not None:
            sheet = Datasheet.model_validate(registration.datasheet)
            entry.plant = sheet.plant
            entry.metrics.update(metrics_of(sheet))
        entry.metrics.update(registration.metrics)
        return entry

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        docs = [(f"{t}/{d}", t, self._devices[(t, d)].model_dump(mode="json")) for t, d in dirty]
        await self._documents.put_many("device", docs)
