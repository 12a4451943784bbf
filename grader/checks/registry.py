"""The check registry: `@check("kind", params=Model)` and `@probe("kind")`.

Built-in checks register exactly as a plugin would: a plugin package exposes a module
under the `iiotlab.checks` entry-point group, importing it runs its decorators.

A check kind is an evaluate function (pure: CheckContext -> CheckOutcome) and optionally
a probe (async, run by the grader during the lab to act: attack the broker, send a
command, query the platform). Probes only record ProbeRecords; evaluation reads them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from iiotlab.datasheet import Datasheet

if TYPE_CHECKING:
    from grader.observation import Observation
    from grader.probes.context import ProbeContext
    from grader.spec import CheckSpec, LabSpec

logger = logging.getLogger(__name__)

BUILTIN_MODULES = (
    "grader.checks.gateway",
    "grader.checks.values",
    "grader.checks.reliability",
    "grader.checks.commands",
    "grader.checks.security",
    "grader.checks.platform",
    "grader.checks.modbus_protection",
    "grader.checks.opcua_access",
    "grader.checks.energy",
    "grader.checks.identifiers",
    "grader.checks.line",
    "grader.checks.manual",
    "grader.checks.sizing",
    "grader.checks.apps",
    "grader.checks.artifacts",
    "grader.checks.operations",
    "grader.checks.mosquitto_policy",
    "grader.checks.intrusion",
    "grader.checks.edge_quality",
    "grader.checks.edge_analytics",
)
ENTRY_POINT_GROUP = "iiotlab.checks"

Json = Any
P = TypeVar("P", bound=BaseModel)


class CheckParams(BaseModel):
    """Base of every check's params model: unknown params are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CheckOutcome:
    points: float
    max_points: float
    passed: bool
    message: str
    evidence: dict[str, Json] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls, max_points: float, parts: Iterable[tuple[str, float, bool]], evidence: dict[str, Json]
    ) -> CheckOutcome:
        """Partial credit: parts are (what, weight, ok); points = max * ok weight / weight."""
        parts = list(parts)
        total = sum(weight for _, weight, _ in parts) or 1.0
        earned = sum(weight for _, weight, ok in parts if ok)
        points = round(max_points * earned / total, 2)
        failed = [what for what, _, ok in parts if not ok]
        message = "all parts passed" if not failed else "failed: " + "; ".join(failed)
        return cls(points, max_points, not failed, message, evidence)


@dataclass(frozen=True)
class CheckContext(Generic[P]):
    lab: LabSpec
    spec: CheckSpec
    params: P
    datasheet: Datasheet
    observation: Observation

    def outcome(
        self, parts: Iterable[tuple[str, float, bool]], evidence: dict[str, Json]
    ) -> CheckOutcome:
        return CheckOutcome.from_parts(self.spec.points, parts, evidence)

    def lab_error(self, why: str) -> CheckOutcome:
        """The lab's own mistake (a tag or step it needs is missing): 0 points, saying why."""
        return CheckOutcome(
            0.0,
            self.spec.points,
            False,
            f"lab error: {why}",
            {"expected": why, "where": "lab.yaml"},
        )


Evaluate = Callable[[CheckContext[Any]], CheckOutcome]
Probe = Callable[["ProbeContext[Any]"], Coroutine[Any, Any, None]]


@dataclass
class CheckKind:
    name: str
    evaluate: Evaluate
    params: type[BaseModel]
    summary: str = ""
    probe: Probe | None = None


@dataclass(frozen=True)
class ResolvedCheck:
    """A lab's check bound to its kind, params validated: resolved once when a lab loads."""

    spec: CheckSpec
    kind: CheckKind
    params: BaseModel


class CheckRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, CheckKind] = {}

    def register(self, kind: CheckKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"check kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> CheckKind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def kinds(self) -> list[CheckKind]:
        return [self._kinds[name] for name in self.names()]


_DEFAULT = CheckRegistry()
_LOADED: list[bool] = []


def check(
    name: str, *, params: type[P], registry: CheckRegistry | None = None
) -> Callable[
    [Callable[[CheckContext[P]], CheckOutcome]], Callable[[CheckContext[P]], CheckOutcome]
]:
    """Register an evaluate function as check kind `name` (its docstring is the summary)."""

    def decorate(
        function: Callable[[CheckContext[P]], CheckOutcome],
    ) -> Callable[[CheckContext[P]], CheckOutcome]:
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        (registry or _DEFAULT).register(CheckKind(name, function, params, summary))
        return function

    return decorate


def probe(
    name: str, *, registry: CheckRegistry | None = None
) -> Callable[
    [Callable[[ProbeContext[P]], Coroutine[Any, Any, None]]],
    Callable[[ProbeContext[P]], Coroutine[Any, Any, None]],
]:
    """Attach an async probe to an already registered check kind."""

    def decorate(
        function: Callable[[ProbeContext[P]], Coroutine[Any, Any, None]],
    ) -> Callable[[ProbeContext[P]], Coroutine[Any, Any, None]]:
        kind = (registry or _DEFAULT).get(name)
        if kind is None:
            raise ValueError(f"probe for unknown check kind {name!r}: register the check first")
        kind.probe = function
        return function

    return decorate


def default_registry() -> CheckRegistry:
    """The registry with the built-in checks and every installed plugin loaded."""
    if not _LOADED:
        _LOADED.append(True)
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                point.load()
            except Exception:  # a broken plugin must not stop grading with the built-ins
                logger.exception("check plugin %s failed to load", point.name)
    return _DEFAULT


def known_kinds() -> list[str]:
    """Names of every check kind (built-in and plugins)."""
    return default_registry().names()
