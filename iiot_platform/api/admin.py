"""Dead letters, tokens, ingestion statistics, identity and health."""

from __future__ import annotations

import base64
import time
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from iiot_platform.api.deps import (
    PrincipalDep,
    ServiceDep,
    listing_scope,
    require_role,
)
from iiot_platform.auth import TokenInfo, TokenSpec
from iiot_platform.dead_letters import PREVIEW_BYTES, DeadLetter, DeadLetterSummary
from iiot_platform.ingest import IngestStats

router = APIRouter(prefix="/api", tags=["operations"])


MAX_ID = 2**63 - 1  # SQLite row ids are signed 64-bit


class DeadLetterOut(BaseModel):
    """A dead letter in a listing: no payload (ask /api/dead-letters/{id}), a preview."""

    id: int
    tenant: str
    device: str
    topic: str
    received_ms: int
    reason: str
    size: int = Field(description="bytes received")
    kept: int = Field(description="bytes kept (a prefix when the payload was larger)")
    preview: str = Field(description=f"the first {PREVIEW_BYTES} bytes, as text")


class DeadLetterPageOut(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_before: int | None = Field(description="pass as `before` for the next page")


class DeadLetterDetail(DeadLetterOut):
    payload_text: str
    payload_base64: str


class Me(BaseModel):
    role: str
    tenant: str | None
    name: str
    auth_enabled: bool


class IngestHealth(BaseModel):
    received: int
    queued: int
    queued_bytes: int
    errors: int
    failed_batches: int
    store_refused: int
    lost_batches: int
    lost_messages: int
    dead_letters: int
    oversized: int
    rate_limited: int
    last_error_ms: int | None


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: an ingestion error or loss within the last health_window_s"
    )
    mqtt_connected: bool
    store: str
    started_ms: int
    ingest: IngestHealth


class Limits(BaseModel):
    """The limits in force, and how many messages the rate limit dropped per tenant."""

    max_message_bytes: int
    max_json_depth: int
    ingest_rate_per_tenant: float
    ingest_burst_per_tenant: int
    dead_letter_tenant_limit: int
    dead_letter_limit: int
    dead_letter_payload_bytes: int
    dead_letter_page_bytes: int
    max_series_points: int
    rate_limited: dict[str, int]


@router.get("/health", response_model=Health)
async def health(service: ServiceDep) -> Health:
    connected = service.mqtt is not None and service.mqtt.connected
    stats = service.ingestor.stats
    window_ms = service.settings.health_window_s * 1000
    recent = stats.last_error_ms is not None and (
        time.time() * 1000 - stats.last_error_ms <= window_ms
    )
    fields = set(IngestHealth.model_fields)
    return Health(
        status="degraded" if recent else "ok",
        mqtt_connected=connected,
        store=service.store.name,
        started_ms=service.started_ms,
        ingest=IngestHealth(**{k: v for k, v in asdict(stats).items() if k in fields}),
    )


@router.get("/me", response_model=Me)
async def me(service: ServiceDep, principal: PrincipalDep) -> Me:
    return Me(
        role=principal.role,
        tenant=principal.tenant,
        name=principal.name,
        auth_enabled=service.settings.auth_enabled,
    )


@router.get("/limits", response_model=Limits)
async def limits(service: ServiceDep, principal: PrincipalDep) -> Limits:
    """Limits in force; a student sees only its own tenant's rate-limit drops."""
    settings = service.settings
    dropped = service.ingestor.limiter.dropped
    scope = principal.scope
    return Limits(
        max_message_bytes=settings.max_message_bytes,
        max_json_depth=settings.max_json_depth,
        ingest_rate_per_tenant=settings.ingest_rate_per_tenant,
        ingest_burst_per_tenant=settings.ingest_burst_per_tenant,
        dead_letter_tenant_limit=settings.dead_letter_tenant_limit,
        dead_letter_limit=settings.dead_letter_limit,
        dead_letter_payload_bytes=settings.dead_letter_payload_bytes,
        dead_letter_page_bytes=settings.dead_letter_page_bytes,
        max_series_points=settings.max_series_points,
        rate_limited={t: n for t, n in dropped.items() if scope in (None, t)},
    )


def _described(letter: DeadLetterSummary | DeadLetter, kept: int, preview: bytes) -> DeadLetterOut:
    """What a listing shows of a letter; the detail adds its payload."""
    return DeadLetterOut(
        id=letter.id,
        tenant=letter.tenant,
        device=letter.device,
        topic=letter.topic,
        received_ms=letter.received_ms,
        reason=letter.reason,
        size=letter.size,
        kept=kept,
        preview=preview.decode("utf-8", errors="replace"),
    )


def _listed(letter: DeadLetterSummary) -> DeadLetterOut:
    return _described(letter, letter.kept, letter.preview)


@router.get("/dead-letters", response_model=DeadLetterPageOut)
async def dead_letters(
    service: ServiceDep,
    principal: PrincipalDep,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only ids below this (paging)")
    ] = None,
) -> DeadLetterPageOut:
    """Refused messages, newest first, with the reason and size; no payloads. A page
    ends at `limit` letters or about dead_letter_page_bytes, whichever comes first."""
    page = await service.documents.dead_letters.page(
        listing_scope(principal, tenant), limit, before, service.settings.dead_letter_page_bytes
    )
    return DeadLetterPageOut(
        dead_letters=[_listed(letter) for letter in page.letters], next_before=page.next_before
    )


@router.get("/dead-letters/{letter_id}", response_model=DeadLetterDetail)
async def dead_letter(
    letter_id: Annotated[int, Path(ge=1, le=MAX_ID)], service: ServiceDep, principal: PrincipalDep
) -> DeadLetterDetail:
    """One dead letter with its kept payload bytes (text and base64)."""
    letter = await service.documents.dead_letters.get(letter_id)
    if letter is None or not principal.can_see(letter.tenant):
        raise HTTPException(404, f"no dead letter {letter_id}")
    listed = _described(letter, len(letter.payload), letter.payload[:PREVIEW_BYTES])
    return DeadLetterDetail(
        **listed.model_dump(),
        payload_text=letter.payload.decode("utf-8", errors="replace"),
        payload_base64=base64.b64encode(letter.payload).decode(),
    )


@router.get("/stats", response_model=IngestStats)
async def stats(service: ServiceDep, principal: PrincipalDep) -> IngestStats:
    """Ingestion counters of the whole platform (instructor or admin)."""
    require_role(principal, "instructor")
    return service.ingestor.stats


@router.get("/tokens", response_model=list[TokenInfo])
async def list_tokens(service: ServiceDep, principal: PrincipalDep) -> list[TokenInfo]:
    require_role(principal, "admin")
    return service.tokens.select()


@router.post("/tokens", response_model=TokenInfo, status_code=201)
async def create_token(spec: TokenSpec, service: ServiceDep, principal: PrincipalDep) -> TokenInfo:
    """Create a token (admin); the token itself is in the answer only this once."""
    require_role(principal, "admin")
    if spec.role == "student" and not spec.tenant:
        raise HTTPException(422, "a student token needs 'tenant'")
    digest, info = service.tokens.create(spec)
    stored = {"digest": digest, "info": info.model_dump(mode="json", exclude={"token"})}
    await service.documents.put("token", digest, spec.tenant or "", stored)
    return info
