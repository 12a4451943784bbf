"""Devices, their latest values and time series, and commands to them."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ValidationError

from iiot_platform.api.deps import PrincipalDep, ServiceDep, listing_scope, require_tenant
from iiot_platform.commands import CommandRecord, CommandSpec
from iiot_platform.registry import Device, DeviceRegistration
from iiot_platform.service import PlatformService
from iiot_platform.stores.base import AGGREGATIONS, Aggregation, MetricValue

router = APIRouter(prefix="/api", tags=["devices"])
MAX_EPOCH_MS = 10**14  # contract v1 timestamps are below this (year 5138)


class LatestOut(BaseModel):
    value: MetricValue
    ts: int
    seq: int
    unit: str = ""


class SeriesOut(BaseModel):
    tenant: str
    device: str
    metric: str
    start: int
    end: int
    interval_ms: int | None
    aggregation: Aggregation | None
    points: list[tuple[int, MetricValue]]
    truncated: bool = False


def _device(service: PlatformService, tenant: str, device: str) -> Device:
    entry = service.registry.get(tenant, device)
    if entry is None:
        raise HTTPException(404, f"no device {device!r} in tenant {tenant!r}")
    return entry


@router.get("/devices", response_model=list[Device])
async def list_devices(
    service: ServiceDep, principal: PrincipalDep, tenant: str | None = None
) -> list[Device]:
    return service.registry.select(listing_scope(principal, tenant))


@router.get("/devices/{tenant}/{device}", response_model=Device)
async def get_device(
    tenant: str, device: str, service: ServiceDep, principal: PrincipalDep
) -> Device:
    require_tenant(principal, tenant)
    return _device(service, tenant, device)


@router.put("/devices/{tenant}/{device}", response_model=Device)
async def register_device(
    tenant: str,
    device: str,
    registration: DeviceRegistration,
    service: ServiceDep,
    principal: PrincipalDep,
) -> Device:
    """Register a device (before or after its first message) with units and descriptions."""
    require_tenant(principal, tenant)
    try:
        entry = service.registry.register(tenant, device, registration)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HTTPException(422, f"datasheet: field '{where}': {first['msg']}") from None
    await service.registry.flush()
    return entry


@router.get("/devices/{tenant}/{device}/latest", response_model=dict[str, LatestOut])
async def latest_values(
    tenant: str, device: str, service: ServiceDep, principal: PrincipalDep
) -> dict[str, LatestOut]:
    require_tenant(principal, tenant)
    entry = _device(service, tenant, device)
    latest = await service.store.latest(tenant, device)
    return {
        name: LatestOut(
            value=item.value,
            ts=item.ts,
            seq=item.seq,
            unit=entry.metrics[name].unit if name in entry.metrics else "",
        )
        for name, item in latest.items()
    }


@router.get("/devices/{tenant}/{device}/series", response_model=SeriesOut)
async def series(
    tenant: str,
    device: str,
    service: ServiceDep,
    principal: PrincipalDep,
    metric: Annotated[str, Query(min_length=1, max_length=64)],
    start: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="epoch ms; default end - 10 min")
    ] = None,
    end: Annotated[
        int | None, Query(ge=1, le=MAX_EPOCH_MS, description="epoch ms (exclusive); default now")
    ] = None,
    interval: Annotated[
        int | None, Query(ge=1, le=MAX_EPOCH_MS, description="ms per aggregate")
    ] = None,
    aggregation: Annotated[str, Query(description="mean, min, max or last")] = "mean",
) -> SeriesOut:
    """Raw points or aggregates; at most max_series_points (then `truncated` is true)."""
    require_tenant(principal, tenant)
    _device(service, tenant, device)
    if aggregation not in AGGREGATIONS:
        raise HTTPException(422, f"aggregation {aggregation!r}: expected one of {AGGREGATIONS}")
    end = end if end is not None else int(time.time() * 1000) + 1
    start = start if start is not None else max(0, end - 600_000)
    if start >= end:
        raise HTTPException(422, f"start {start} must be before end {end}")
    agg: Aggregation = aggregation  # type: ignore[assignment]
    limit = service.settings.max_series_points
    points = await service.store.series(
        tenant, device, metric, start, end, interval, agg, limit=limit + 1
    )
    return SeriesOut(
        tenant=tenant,
        device=device,
        metric=metric,
        start=start,
        end=end,
        interval_ms=interval,
        aggregation=agg if interval else None,
        points=[(p.ts, p.value) for p in points[:limit]],
        truncated=len(points) > limit,
    )


@router.post("/devices/{tenant}/{device}/commands", response_model=CommandRecord, status_code=202)
async def send_command(
    tenant: str,
    device: str,
    spec: CommandSpec,
    service: ServiceDep,
    principal: PrincipalDep,
    wait: Annotated[
        float, Query(ge=0, le=30, allow_inf_nan=False, description="seconds to wait for the ack")
    ] = 0,
) -> CommandRecord:
    """Publish a command on iiot/{tenant}/{device}/cmd; the ack updates it."""
    require_tenant(principal, tenant)
    record = await service.commands.send(tenant, device, spec, principal.name, service.publish)
    await service.save()
    if wait:
        record = await service.commands.wait(record.id, wait)
    return record


@router.get("/devices/{tenant}/{device}/commands", response_model=list[CommandRecord])
async def list_commands(
    tenant: str,
    device: str,
    service: ServiceDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="newest first, at most")] = 1000,
) -> list[CommandRecord]:
    require_tenant(principal, tenant)
    return service.commands.select(tenant, device)[:limit]


@router.get("/commands/{command_id}", response_model=CommandRecord)
async def get_command(
    command_id: str, service: ServiceDep, principal: PrincipalDep
) -> CommandRecord:
    record = service.commands.get(command_id)
    if record is None or not principal.can_see(record.tenant):
        raise HTTPException(404, f"no command {command_id!r}")
    return record
