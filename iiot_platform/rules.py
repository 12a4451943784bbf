"""Rules (threshold with hysteresis, rate of change, stale data, frozen value, device
offline) and their evaluation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iiot_platform.alarms import Alarm, AlarmBook
from iiot_platform.stores.base import MetricValue, TelemetryRecord

RuleKind = Literal["threshold", "rate", "stale", "frozen", "offline"]
RULE_KINDS: tuple[RuleKind, ...] = ("threshold", "rate", "stale", "frozen", "offline")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,127}$"


class RuleSpec(BaseModel):
    """Body of POST /api/rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    kind: RuleKind
    tenant: str | None = Field(default=None, description="default: the caller's tenant")
    device: str = Field(default="*", description="a device name, or * for every device")
    metric: str | None = None
    high: float | None = Field(default=None, description="threshold: active above")
    low: float | None = Field(default=None, description="threshold: active below")
    hysteresis: float = Field(default=0.0, ge=0, description="clear only this far inside")
    max_rate: float | None = Field(default=None, gt=0, description="rate: units per second")
    stale_s: float | None = Field(default=None, gt=0, description="stale: seconds of silence")
    frozen_s: float | None = Field(
        default=None, gt=0, description="frozen: seconds the value may stay exactly the same"
    )
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind in ("threshold", "rate", "frozen") and not self.metric:
            raise ValueError(f"a {self.kind} rule needs 'metric'")
        if self.kind == "threshold" and self.high is None and self.low is None:
            raise ValueError("a threshold rule needs 'high', 'low' or both")
        if self.high is not None and self.low is not None and self.low >= self.high:
            raise ValueError("'low' must be below 'high'")
        if self.kind == "rate" and self.max_rate is None:
            raise ValueError("a rate rule needs 'max_rate' (units per second)")
        if self.kind == "stale" and self.stale_s is None:
            raise ValueError("a stale rule needs 'stale_s' (seconds without a message)")
        if self.kind == "frozen" and self.frozen_s is None:
            raise ValueError("a frozen rule needs 'frozen_s' (seconds the value may not change)")
        return self


class Rule(RuleSpec):
    id: str
    tenant: str
    created_ms: int


@dataclass
class _Condition:
    active: bool = False
    previous: tuple[int, float] | None = None
    unchanged_since: tuple[int, float] | None = None  # frozen: (ts, value) it last changed


def _number(value: MetricValue | None) -> float | None:
    if value is None or isinstance(value, str):
        return None
    return float(value)


class RuleEngine:
    """Evaluates every rule on each message and on a clock (stale); drives the alarm book."""

    def __init__(self, alarms: AlarmBook) -> None:
        self.alarms = alarms
        self._rules: dict[str, Rule] = {}
        self._conditions: dict[tuple[str, str], _Condition] = {}

    def load(self, rules: Iterable[Rule]) -> None:
        for rule in rules:
            self._rules[rule.id] = rule
        for alarm in self.alarms.open():
            self._conditions[(alarm.rule_id, alarm.device)] = _Condition(active=True)

    def add(self, spec: RuleSpec, tenant: str) -> Rule:
        rule = Rule(
            **spec.model_dump(exclude={"tenant"}),
            id=uuid.uuid4().hex[:12],
            tenant=tenant,
            created_ms=int(time.time() * 1000),
        )
        self._rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str) -> Rule | None:
        return self._rules.pop(rule_id, None)

    def get(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id)

    def select(self, tenant: str | None = None) -> list[Rule]:
        rules = [r for r in self._rules.values() if tenant is None or r.tenant == tenant]
        return sorted(rules, key=lambda r: r.created_ms)

    def _matching(self, tenant: str, device: str) -> list[Rule]:
        return [r for r in self._rules.values() if r.tenant == tenant and r.device in ("*", device)]

    def evaluate(self, record: TelemetryRecord) -> list[Alarm]:
        """Alarm transitions (raised or cleared) caused by one accepted message."""
        events: list[Alarm] = []
        for rule in self._matching(record.tenant, record.device):
            condition = self._conditions.setdefault((rule.id, record.device), _Condition())
            if rule.kind == "offline":
                continue  # status messages drive it (evaluate_status)
            if rule.kind == "stale":
                tripped: bool | None = False
                value: float | None = None
            else:
                value = _number(record.metrics.get(rule.metric or ""))
                if value is None:
                    continue
                tripped = self._check(rule, condition, record.ts, value)
            event = self._transition(rule, condition, record.device, tripped, value, record.ts)
            if event is not None:
                events.append(event)
        return events

    def evaluate_status(self, tenant: str, device: str, online: bool, ts: int) -> list[Alarm]:
        """Offline alarm transitions caused by a status message (`offline`: the Last Will)."""
        events: list[Alarm] = []
        for rule in self._matching(tenant, device):
            if rule.kind != "offline":
                continue
            condition = self._conditions.setdefault((rule.id, device), _Condition())
            event = self._transition(rule, condition, device, not online, None, ts)
            if event is not None:
                events.append(event)
        return events

    def _check(self, rule: Rule, condition: _Condition, ts: int, value: float) -> bool | None:
        """True: condition holds; False: it cleared; None: no change to decide."""
        if rule.kind == "frozen":
            return self._frozen(rule, condition, ts, value)
        if rule.kind == "threshold":
            high, low, band = rule.high, rule.low, rule.hysteresis
            if not condition.active:
                return (high is not None and value > high) or (low is not None and value < low)
            inside = (high is None or value <= high - band) and (low is None or value >= low + band)
            return not inside
        previous, condition.previous = condition.previous, (ts, value)
        if previous is None or ts <= previous[0]:
            return None
        rate = abs(value - previous[1]) / ((ts - previous[0]) / 1000)
        limit = rule.max_rate or 0.0
        if not condition.active:
            return rate > limit
        return rate > limit - rule.hysteresis

    @staticmethod
    def _frozen(rule: Rule, condition: _Condition, ts: int, value: float) -> bool | None:
        """A value exactly equal in every message for frozen_s; any change clears it."""
        since = condition.unchanged_since
        if since is None or value != since[1]:
            condition.unchanged_since = (ts, value)
            return False
        if ts < since[0]:  # an older message (replayed): it decides nothing
            return None
        return ts - since[0] >= (rule.frozen_s or 0.0) * 1000

    def _transition(
        self,
        rule: Rule,
        condition: _Condition,
        device: str,
        tripped: bool | None,
        value: float | None,
        ts: int,
    ) -> Alarm | None:
        if tripped is None or tripped == condition.active:
            return None
        condition.active = tripped
        if tripped:
            return self.alarms.raise_alarm(rule, device, value, ts, self._describe(rule, value))
        return self.alarms.clear(rule.id, device, value, ts)

    @staticmethod
    def _describe(rule: Rule, value: float | None) -> str:
        shown = f"{value:.6g}" if value is not None else "?"
        if rule.kind == "threshold" and None not in (rule.high, value) and value > rule.high:  # type: ignore[operator]
            return f"{rule.metric} = {shown} above {rule.high:g}"
        if rule.kind == "threshold":
            return f"{rule.metric} = {shown} below {rule.low:g}"
        if rule.kind == "rate":
            return f"{rule.metric} changes faster than {rule.max_rate:g}/s (now {shown})"
        if rule.kind == "frozen":
            return f"{rule.metric} stuck at {shown} for {rule.frozen_s:g} s or more"
        if rule.kind == "offline":
            return "device offline (status offline: its gateway disconnected)"
        return f"no message for over {rule.stale_s} s"

    def check_stale(self, now_ms: int, last_seen: dict[tuple[str, str], int]) -> list[Alarm]:
        """Raise stale alarms for devices silent longer than a stale rule allows."""
        events: list[Alarm] = []
        for rule in self._rules.values():
            if rule.kind != "stale":
                continue
            for (tenant, device), seen_ms in last_seen.items():
                if tenant != rule.tenant or rule.device not in ("*", device):
                    continue
                silent = now_ms - seen_ms > (rule.stale_s or 0) * 1000
                condition = self._conditions.setdefault((rule.id, device), _Condition())
                if silent and not condition.active:
                    event = self._transition(rule, condition, device, True, None, now_ms)
                    if event is not None:
                        events.append(event)
        return events
