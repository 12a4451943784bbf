"""Dead letters, tokens, ingestion statistics, identity and health."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from iiot_platform.api.deps import (
    PrincipalDep,
    ServiceDep,
    listing_scope,
    require_role,
)
from iiot_platform.auth import TokenInfo, TokenSpec
from iiot_platform.ingest import IngestStats

router = APIRouter(prefix="/api", tags=["operations"])


class DeadLetterOut(BaseModel):
    id: int
    tenant: str
    device: str
    topic: str
    received_ms: int
    reason: str
    size: int
    payload_text: str
    payload_base64: str


class Me(BaseModel):
    role: str
    tenant: str | None
    name: str
    auth_enabled: bool


class Health(BaseModel):
    status: str
    mqtt_connected: bool
    store: str
    started_ms: int


@router.get("/health", response_model=Health)
async def health(service: ServiceDep) -> Health:
    connected = service.mqtt is not None and service.mqtt.connected
    return Health(
        status="ok",
        mqtt_connected=connected,
        store=service.store.name,
        started_ms=service.started_ms,
    )


@router.get("/me", response_model=Me)
async def me(service: ServiceDep, principal: PrincipalDep) -> Me:
    return Me(
        role=principal.role,
        tenant=principal.tenant,
        name=principal.name,
        auth_enabled=service.settings.auth_enabled,
    )


@router.get("/dead-letters", response_model=list[DeadLetterOut])
async def dead_letters(
    service: ServiceDep,
    principal: PrincipalDep,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="only ids below this (paging)")] = None,
) -> list[DeadLetterOut]:
    """Refused messages, newest first, with the reason and the exact payload bytes."""
    letters = await service.documents.dead_letters(listing_scope(principal, tenant), limit, before)
    return [
        DeadLetterOut(
            id=d.id,
            tenant=d.tenant,
            device=d.device,
            topic=d.topic,
            received_ms=d.received_ms,
            reason=d.reason,
            size=len(d.payload),
            payload_text=d.payload[:2000].decode("utf-8", errors="replace"),
            payload_base64=base64.b64encode(d.payload).decode(),
        )
        for d in letters
    ]


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
