"""`GET /api/events`: the platform's live events as server-sent events (text/event-stream)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from iiot_platform.api.deps import PrincipalDep, ServiceDep

router = APIRouter(prefix="/api", tags=["events"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(service: ServiceDep, principal: PrincipalDep) -> StreamingResponse:
    """Live events of the caller's scope (see iiot_platform/events.py for the kinds).

    A browser's EventSource cannot send a header: it passes the token as `?token=`."""
    return StreamingResponse(
        service.events.stream(principal.scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
