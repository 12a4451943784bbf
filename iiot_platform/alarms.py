"""Alarm lifecycle: active -> acknowledged -> cleared (a condition can clear unacknowledged)."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from iiotlab.errors import IiotlabError

if TYPE_CHECKING:
    from iiot_platform.rules import Rule

AlarmState = Literal["active", "acknowledged", "cleared"]


class AlarmStateError(IiotlabError):
    """An acknowledge of an alarm that is no longer active."""


class Alarm(BaseModel):
    id: str
    tenant: str
    device: str
    rule_id: str
    rule: str
    kind: str
    metric: str | None
    severity: str
    state: AlarmState
    value: float | None
    message: str
    raised_ms: int
    acknowledged_ms: int | None = None
    acknowledged_by: str | None = None
    cleared_ms: int | None = None
    cleared_value: float | None = None


class AlarmBook:
    """Every alarm, at most one open (active or acknowledged) per rule and device."""

    def __init__(self, keep: int = 5000) -> None:
        self._alarms: dict[str, Alarm] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._keep = keep
        self.dirty: set[str] = set()

    def load(self, alarms: list[Alarm]) -> None:
        for alarm in sorted(alarms, key=lambda a: a.raised_ms):
            self._alarms[alarm.id] = alarm
            if alarm.state != "cleared":
                self._open[(alarm.rule_id, alarm.device)] = alarm.id

    def open(self) -> list[Alarm]:
        return [self._alarms[i] for i in self._open.values()]

    def get(self, alarm_id: str) -> Alarm | None:
        return self._alarms.get(alarm_id)

    def select(self, tenant: str | None = None, state: AlarmState | None = None) -> list[Alarm]:
        alarms = [
            a
            for a in self._alarms.values()
            if (tenant is None or a.tenant == tenant) and (state is None or a.state == state)
        ]
        return sorted(alarms, key=lambda a: a.raised_ms, reverse=True)

    def raise_alarm(
        self, rule: Rule, device: str, value: float | None, ts: int, message: str
    ) -> Alarm | None:
        key = (rule.id, device)
        if key in self._open:
            return None
        alarm = Alarm(
            id=uuid.uuid4().hex[:12],
            tenant=rule.tenant,
            device=device,
            rule_id=rule.id,
            rule=rule.name,
            kind=rule.kind,
            metric=rule.metric,
            severity=rule.severity,
            state="active",
            value=value,
            message=message,
            raised_ms=ts,
        )
        self._alarms[alarm.id] = alarm
        self._open[key] = alarm.id
        self.dirty.add(alarm.id)
        self._trim()
        return alarm

    def clear(self, rule_id: str, device: str, value: float | None, ts: int) -> Alarm | None:
        alarm_id = self._open.pop((rule_id, device), None)
        if alarm_id is None:
            return None
        alarm = self._alarms[alarm_id]
        alarm.state, alarm.cleared_ms, alarm.cleared_value = "cleared", ts, value
        self.dirty.add(alarm.id)
        return alarm

    def acknowledge(self, alarm_id: str, by: str) -> Alarm:
        alarm = self._alarms[alarm_id]
        if alarm.state != "active":
            raise AlarmStateError(
                f"alarm {alarm_id} is {alarm.state}; only an active one can be acknowledged"
            )
        alarm.state = "acknowledged"
        alarm.acknowledged_ms, alarm.acknowledged_by = int(time.time() * 1000), by
        self.dirty.add(alarm.id)
        return alarm

    def _trim(self) -> None:
        if len(self._alarms) <= self._keep:
            return
        open_ids = set(self._open.values())
        for alarm in sorted(self._alarms.values(), key=lambda a: a.raised_ms):
            if len(self._alarms) <= self._keep:
                break
            if alarm.id not in open_ids:
                del self._alarms[alarm.id]
