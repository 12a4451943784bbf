"""manual: a part the instructor scores against a rubric (e.g. an architecture write-up).

The automatic run leaves it pending: 0 of its points, `evidence.pending` true, and the
result's `pending_points` counts it. `iiotlab grade-manual` enters the instructor's points
and re-signs the result (grader/manual.py).
"""

from __future__ import annotations

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check
from grader.spec import Bilingual

PENDING_MESSAGE = "pending: scored by the instructor (iiotlab grade-manual)"


class ManualParams(CheckParams):
    rubric: Bilingual = Field(description="what the instructor scores, shown to the student")
    artifact: str | None = Field(
        default=None, description="the submission file the instructor reads, e.g. ARCHITECTURE.md"
    )


@check("manual", params=ManualParams)
def manual(ctx: CheckContext[ManualParams]) -> CheckOutcome:
    """Scored by the instructor against a rubric; pending (0 points) until then."""
    params = ctx.params
    evidence = {
        "pending": True,
        "expected": params.rubric.model_dump(),
        "saw": f"{params.artifact} in the submission" if params.artifact else "the submission",
        "where": "scored by the instructor with iiotlab grade-manual",
    }
    return CheckOutcome(0.0, ctx.spec.points, False, PENDING_MESSAGE, evidence)
