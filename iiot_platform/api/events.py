"""`GET /api/events`: the platform's live events as server-sent events (text/event-stream)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from iiot_platform.api.deps import PrincipalDep, ServiceDep, listing_scope

router = APIRouter(prefix="/api", tags=["events"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    service: ServiceDep, principal: PrincipalDep, tenant: str | None = None
) -> StreamingResponse:
    """Live events of the caller's scope, or of `tenant` (see iiot_platform/events.py for
    the kinds); a student asking for another tenant gets 403, as in the listings.

    A browser's EventSource cannot send a header: it passes the token as `?token=`."""
    scope = listing_scope(principal, tenant)
    return StreamingResponse(
        service.events.stream(scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
