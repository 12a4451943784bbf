"""Writing telemetry over REST: what an industrial APP computes goes back into the platform.

An APP (OEE, energy KPIs) reads series over the API and writes its results as the metrics
of a derived device. The messages take the MQTT path's road from the queue on: the same
contract v1 validation, the tenant's rate limit, duplicate detection by (device, seq),
storage and rules. The answer waits until they are processed, so a read right after it
sees them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from iiot_platform.api.deps import PrincipalDep, ServiceDep, require_tenant
from iiotlab.errors import PayloadError
from iiotlab.payloads import Telemetry, decode_payload, topic

router = APIRouter(prefix="/api", tags=["devices"])
MAX_MESSAGES = 1000  # per request
PROCESSED_WITHIN_S = 10.0  # the answer waits this long at most for ingestion


class TelemetryAccepted(BaseModel):
    accepted: int
    processed: bool  # false: still queued when the answer was sent (platform busy)


def _messages(raw: bytes, max_bytes: int) -> list[Any]:
    if len(raw) > max_bytes * 4:
        raise HTTPException(
            413, f"body is {len(raw)} bytes, over {max_bytes * 4}: send fewer messages at once"
        )
    try:
        data = json.loads(raw)
    except Exception as error:  # not UTF-8, not JSON, nested too deep
        raise HTTPException(
            422,
            f"body is not JSON ({type(error).__name__}): send a contract v1 telemetry "
            "object or a list of them",
        ) from None
    items = data if isinstance(data, list) else [data]
    if not 1 <= len(items) <= MAX_MESSAGES:
        raise HTTPException(422, f"send 1 to {MAX_MESSAGES} messages, not {len(items)}")
    return items


def _validated(item: Any, index: int, device: str, limits: tuple[int, int]) -> bytes:
    encoded = json.dumps(item, separators=(",", ":")).encode()
    try:
        payload = decode_payload("telemetry", encoded, max_bytes=limits[0], max_depth=limits[1])
    except PayloadError as error:
        raise HTTPException(422, f"message {index}: {error}") from None
    assert isinstance(payload, Telemetry)
    if payload.device != device:
        raise HTTPException(
            422, f"message {index}: field 'device' is {payload.device!r}, the path says {device!r}"
        )
    return encoded


@router.post(
    "/devices/{tenant}/{device}/telemetry", response_model=TelemetryAccepted, status_code=202
)
async def write_telemetry(
    tenant: str, device: str, request: Request, service: ServiceDep, principal: PrincipalDep
) -> TelemetryAccepted:
    """Store contract v1 telemetry of a device (one object or a list, at most 1000)."""
    require_tenant(principal, tenant)
    settings = service.settings
    try:
        name = topic(tenant, device, "telemetry")
    except PayloadError as error:
        raise HTTPException(422, str(error)) from None
    items = _messages(await request.body(), settings.max_message_bytes)
    limits = (settings.max_message_bytes, settings.max_json_depth)
    payloads = [_validated(item, i, device, limits) for i, item in enumerate(items)]
    received_ms = int(time.time() * 1000)
    for payload in payloads:
        await service.ingestor.submit(name, payload, received_ms)
    try:
        await asyncio.wait_for(service.ingestor.join(), PROCESSED_WITHIN_S)
    except TimeoutError:
        return TelemetryAccepted(accepted=len(payloads), processed=False)
    return TelemetryAccepted(accepted=len(payloads), processed=True)
