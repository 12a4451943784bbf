"""Identifier resolution (标识解析): prefixes, identifiers, resolve."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from iiot_platform.api.deps import (
    PrincipalDep,
    ServiceDep,
    listing_scope,
    owning_tenant,
    require_tenant,
)
from iiot_platform.identifiers import (
    IdentifierRecord,
    IdentifierSpec,
    IdentifierSyntaxError,
    Prefix,
    PrefixSpec,
    PrefixTakenError,
    UnknownPrefixError,
)
from iiot_platform.registry import Device

router = APIRouter(prefix="/api", tags=["identifiers"])


class Resolution(IdentifierRecord):
    device_info: Device | None = None


@router.get("/prefixes", response_model=list[Prefix])
async def list_prefixes(
    service: ServiceDep, principal: PrincipalDep, tenant: str | None = None
) -> list[Prefix]:
    scope = listing_scope(principal, tenant)
    prefixes = service.identifiers.prefixes.values()
    return sorted((p for p in prefixes if scope in (None, p.tenant)), key=lambda p: p.prefix)


@router.post("/prefixes", response_model=Prefix, status_code=201)
async def create_prefix(spec: PrefixSpec, service: ServiceDep, principal: PrincipalDep) -> Prefix:
    """Register a prefix (e.g. 88.100.1) owned by a tenant.

    Under a registered prefix (two-level allocation) only the parent's owner allocates.
    """
    tenant = owning_tenant(principal, spec.tenant, service.settings.default_tenant)
    try:
        parent = service.identifiers.parent_of(spec.prefix)
        if parent is not None and not principal.can_see(parent.tenant):
            raise HTTPException(
                403,
                f"prefix {spec.prefix!r} lies under {parent.prefix!r} of tenant "
                f"{parent.tenant!r}: only its owner allocates prefixes under it",
            )
        prefix = service.identifiers.add_prefix(spec.prefix, tenant, spec.description)
    except IdentifierSyntaxError as error:
        raise HTTPException(422, str(error)) from None
    except PrefixTakenError as error:
        raise HTTPException(409, str(error)) from None
    await service.put_models("prefix", [prefix])
    return prefix


@router.get("/identifiers", response_model=list[IdentifierRecord])
async def list_identifiers(
    service: ServiceDep, principal: PrincipalDep, tenant: str | None = None
) -> list[IdentifierRecord]:
    scope = listing_scope(principal, tenant)
    records = service.identifiers.identifiers.values()
    return sorted((r for r in records if scope in (None, r.tenant)), key=lambda r: r.identifier)


@router.post("/identifiers", response_model=IdentifierRecord, status_code=201)
async def register_identifier(
    spec: IdentifierSpec, service: ServiceDep, principal: PrincipalDep
) -> IdentifierRecord:
    """Register prefix/suffix under a prefix your tenant owns, bound to a device."""
    try:
        owner = service.identifiers.prefix_of(spec.identifier)
    except IdentifierSyntaxError as error:
        raise HTTPException(422, str(error)) from None
    except UnknownPrefixError as error:
        raise HTTPException(404, str(error)) from None
    require_tenant(principal, owner.tenant)
    record = service.identifiers.register(spec)
    await service.put_models("identifier", [record])
    return record


@router.get("/resolve/{identifier:path}", response_model=Resolution)
async def resolve_identifier(
    identifier: str, service: ServiceDep, principal: PrincipalDep
) -> Resolution:
    """Resolve prefix/suffix to its record and the bound device."""
    try:
        record = service.identifiers.resolve(identifier)
    except IdentifierSyntaxError as error:
        raise HTTPException(422, str(error)) from None
    except UnknownPrefixError as error:
        raise HTTPException(404, str(error)) from None
    if record is None or not principal.can_see(record.tenant):
        raise HTTPException(404, f"identifier {identifier!r} is not registered")
    device = service.registry.get(record.tenant, record.device) if record.device else None
    return Resolution(**record.model_dump(), device_info=device)
