"""check -> score: evaluate every check of a lab on an Observation, build the Result."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from grader.checks.registry import CheckContext
from grader.observation import Observation
from grader.results import CheckResult, Result
from grader.spec import LabPlan, LabSpec
from iiotlab.datasheet import Datasheet
from iiotlab.errors import IiotlabError

logger = logging.getLogger(__name__)


class CheckCrashError(IiotlabError):
    """A check itself failed: the grader's fault, so the run is not gradable."""


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def versions() -> dict[str, str]:
    out = {}
    for name in ("iiotlab", "pymodbus", "asyncua", "paho-mqtt", "amqtt"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def run_checks(plan: LabPlan, datasheet: Datasheet, observation: Observation) -> list[CheckResult]:
    """evaluate + score: every resolved check of the lab on what the run saw."""
    results = []
    for check in plan.checks:
        spec = check.spec
        context: CheckContext[Any] = CheckContext(
            plan.lab, spec, check.params, datasheet, observation
        )
        try:
            outcome = check.kind.evaluate(context)
        except Exception as exc:
            logger.exception("check %s crashed", spec.id)
            raise CheckCrashError(f"check {spec.id} ({spec.kind}) crashed: {exc!r}") from exc
        results.append(
            CheckResult(
                id=spec.id,
                kind=spec.kind,
                points=min(outcome.points, spec.points),
                max_points=spec.points,
                passed=outcome.passed,
                message=outcome.message,
                hint=spec.hint.model_dump(),
                evidence=outcome.evidence,
            )
        )
    return results


def pending_points(checks: list[CheckResult]) -> float:
    """Max points of the manual checks still waiting for the instructor."""
    return round(sum(c.max_points for c in checks if c.evidence.get("pending") is True), 2)


def build_result(
    lab: LabSpec,
    student: str,
    seed: int,
    started_ms: int,
    finished_ms: int,
    checks: list[CheckResult],
) -> Result:
    return Result(
        lab=lab.id,
        student=student,
        seed=f"{seed:016x}",
        started=iso(started_ms),
        finished=iso(finished_ms),
        gradable=True,
        score=round(sum(c.points for c in checks), 2),
        max_score=lab.max_score,
        pending_points=pending_points(checks),
        checks=checks,
        versions=versions(),
    )


def not_gradable(
    lab: LabSpec, student: str, seed: int, started_ms: int, finished_ms: int, reason: str
) -> Result:
    result = build_result(lab, student, seed, started_ms, finished_ms, [])
    return result.model_copy(update={"gradable": False, "reason": reason, "score": 0.0})


def submission_error(
    lab: LabSpec, student: str, seed: int, started_ms: int, finished_ms: int, error: Exception
) -> Result:
    """The submission could not run: gradable, every check 0, the reason in en and zh."""
    reason = {
        "en": f"Your submission could not run: {error}",
        "zh": f"你的提交无法运行，请按提示修改：{error}",
    }
    checks = [
        CheckResult(
            id=spec.id,
            kind=spec.kind,
            points=0.0,
            max_points=spec.points,
            passed=False,
            message=f"not run: {error}",
            hint=spec.hint.model_dump(),
        )
        for spec in lab.checks
    ]
    result = build_result(lab, student, seed, started_ms, finished_ms, checks)
    return result.model_copy(update={"submission_error": reason})
