"""Dependencies every route uses: the running service and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request

from iiot_platform.auth import OPEN_PRINCIPAL, Principal
from iiot_platform.service import PlatformService
from iiot_platform.settings import Role


def get_service(request: Request) -> PlatformService:
    service: PlatformService = request.app.state.service
    return service


def get_principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    token: Annotated[str | None, Query(description="token, for links and EventSource")] = None,
) -> Principal:
    service = get_service(request)
    if not service.settings.auth_enabled:
        return OPEN_PRINCIPAL
    presented = token
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise HTTPException(401, "Authorization must be 'Bearer <token>'")
        presented = value.strip()
    if not presented:
        raise HTTPException(
            401,
            "this platform requires a token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = service.tokens.principal(presented)
    if principal is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return principal


ServiceDep = Annotated[PlatformService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(principal: Principal, role: Role) -> None:
    if not principal.at_least(role):
        raise HTTPException(403, f"this needs the {role} role; your token is {principal.role}")


def require_tenant(principal: Principal, tenant: str) -> None:
    """403 when a student asks for a tenant other than its own."""
    if not principal.can_see(tenant):
        raise HTTPException(
            403, f"a student token of tenant {principal.tenant!r} cannot access tenant {tenant!r}"
        )


def listing_scope(principal: Principal, tenant: str | None) -> str | None:
    """The tenant a listing shows: a student's own; others what they ask (None = all)."""
    if tenant is not None:
        require_tenant(principal, tenant)
        return tenant
    return principal.scope


def owning_tenant(principal: Principal, tenant: str | None, default: str) -> str:
    """The tenant a created object belongs to."""
    if tenant is None:
        return principal.tenant or default
    require_tenant(principal, tenant)
    return tenant
