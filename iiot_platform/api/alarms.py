"""Rules and the alarms they raise."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from iiot_platform.alarms import Alarm, AlarmState, AlarmStateError
from iiot_platform.api.deps import PrincipalDep, ServiceDep, listing_scope, owning_tenant
from iiot_platform.rules import Rule, RuleSpec

router = APIRouter(prefix="/api", tags=["rules and alarms"])


@router.get("/alarms", response_model=list[Alarm])
async def list_alarms(
    service: ServiceDep,
    principal: PrincipalDep,
    tenant: str | None = None,
    state: AlarmState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="newest first, at most")] = 1000,
) -> list[Alarm]:
    return service.alarms.select(listing_scope(principal, tenant), state)[:limit]


def _alarm(service: ServiceDep, principal: PrincipalDep, alarm_id: str) -> Alarm:
    alarm = service.alarms.get(alarm_id)
    if alarm is None or not principal.can_see(alarm.tenant):
        raise HTTPException(404, f"no alarm {alarm_id!r}")
    return alarm


@router.get("/alarms/{alarm_id}", response_model=Alarm)
async def get_alarm(alarm_id: str, service: ServiceDep, principal: PrincipalDep) -> Alarm:
    return _alarm(service, principal, alarm_id)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=Alarm)
async def acknowledge_alarm(alarm_id: str, service: ServiceDep, principal: PrincipalDep) -> Alarm:
    """active -> acknowledged; 409 when the alarm is already acknowledged or cleared."""
    _alarm(service, principal, alarm_id)
    try:
        alarm = service.alarms.acknowledge(alarm_id, principal.name)
    except AlarmStateError as error:
        raise HTTPException(409, str(error)) from None
    await service.save()
    service.alarms_changed({alarm.tenant})
    return alarm


@router.get("/rules", response_model=list[Rule])
async def list_rules(
    service: ServiceDep, principal: PrincipalDep, tenant: str | None = None
) -> list[Rule]:
    return service.rules.select(listing_scope(principal, tenant))


@router.post("/rules", response_model=Rule, status_code=201)
async def create_rule(spec: RuleSpec, service: ServiceDep, principal: PrincipalDep) -> Rule:
    tenant = owning_tenant(principal, spec.tenant, service.settings.default_tenant)
    rule = service.rules.add(spec, tenant)
    await service.put_models("rule", [rule])
    return rule


def _rule(service: ServiceDep, principal: PrincipalDep, rule_id: str) -> Rule:
    rule = service.rules.get(rule_id)
    if rule is None or not principal.can_see(rule.tenant):
        raise HTTPException(404, f"no rule {rule_id!r}")
    return rule


@router.get("/rules/{rule_id}", response_model=Rule)
async def get_rule(rule_id: str, service: ServiceDep, principal: PrincipalDep) -> Rule:
    return _rule(service, principal, rule_id)


@router.delete("/rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, service: ServiceDep, principal: PrincipalDep) -> None:
    _rule(service, principal, rule_id)
    service.rules.remove(rule_id)
    await service.documents.delete("rule", rule_id)
