"""Every lab, graded for real: solutions full marks, mutants lose exactly their checks,
starters gradable and partial, a solution configured for another student loses values.

Labs are discovered through grader.catalog (tests/labs/curriculum.py): a new lab folder
is graded without editing this file. All gradings of the selected tests run concurrently in
one session pool (class mode's LocalGrader); `-k <lab id>` grades that lab alone.
Run one lab: `python -m pytest -p no:cacheprovider tests/labs -k net-01-modbus-datasheet`.
"""

from __future__ import annotations

from typing import Any

import pytest
from _pytest.mark import ParameterSet

from tests.labs.curriculum import (
    STUDENTS,
    CurriculumPool,
    Job,
    Lab,
    Mutant,
    MutantFormatError,
    Outcome,
    Submission,
    discover_labs,
    lab_submissions,
    load_mutant,
)

pytestmark = [pytest.mark.integration, pytest.mark.curriculum]

LABS = discover_labs()
MIN_MUTANTS = 2
# the variant mismatch: the solution run with ANA's datasheet, graded as BO
MISMATCH_LABS = {"net-01-modbus-datasheet": "values", "edge-01-modbus-to-mqtt": "values"}
CONFIGURED_FOR, GRADED_AS = STUDENTS[0], STUDENTS[1]
# a test waits for its own grading, which may be queued behind the whole curriculum
WAIT_S = 1500


def _jobs(kind: str) -> list[ParameterSet]:
    return [
        pytest.param(job, id=job.key)
        for lab in LABS
        for submission in lab_submissions(lab)
        if submission.kind == kind
        for job in (Job(submission, student) for student in STUDENTS)
    ]


def _mismatch_jobs() -> list[ParameterSet]:
    params: list[ParameterSet] = []
    for lab in LABS:
        if lab.id not in MISMATCH_LABS or lab.spec is None:
            continue
        submission = Submission(
            lab.id,
            lab.path,
            "mismatch",
            f"mismatch-configured-for-{CONFIGURED_FOR}",
            lab.path / "solution",
            frozenset({MISMATCH_LABS[lab.id]}),
            lab.spec.duration_s,
            configured_for=CONFIGURED_FOR,
        )
        job = Job(submission, GRADED_AS)
        params.append(pytest.param(job, id=job.key))
    return params


def _lab_params() -> list[ParameterSet]:
    return [pytest.param(lab, id=lab.id) for lab in LABS]


def _graded(pool: CurriculumPool, job: Job) -> Outcome:
    outcome = pool.outcome(job, timeout=WAIT_S)
    data = outcome.result
    assert data is not None and data.get("gradable"), outcome.describe()
    return outcome


def _pending(check: dict[str, Any]) -> bool:
    """A manual check the instructor has not scored yet (docs/grader.md, `manual`)."""
    evidence = check.get("evidence") or {}
    return check.get("kind") == "manual" and evidence.get("pending") is True


def _lost(outcome: Outcome) -> set[str]:
    return {
        i for i, c in outcome.checks.items() if c["points"] < c["max_points"] and not _pending(c)
    }


def test_labs_are_discovered() -> None:
    assert len(LABS) >= 5, [lab.id for lab in LABS]
    assert len({lab.id for lab in LABS}) == len(LABS)


@pytest.mark.parametrize("lab", _lab_params())
def test_lab_has_solution_starter_and_mutants(lab: Lab) -> None:
    assert lab.spec is not None, f"{lab.path}/lab.yaml does not load: {lab.error}"
    for name in ("solution", "starter"):
        assert (lab.path / name / "gateway.cmd").is_file() or (
            lab.path / name / "run.sh"
        ).is_file(), f"{lab.id}: {name}/ needs gateway.cmd (or run.sh)"
    problems: list[str] = []
    mutants: list[Mutant] = []
    for folder in lab.mutant_folders():
        try:
            mutants.append(load_mutant(folder, lab.check_ids))
        except MutantFormatError as exc:
            problems.append(str(exc))
    assert not problems, problems
    assert len(mutants) >= MIN_MUTANTS, (
        f"{lab.id}: {len(mutants)} mutant(s) under mutants/, at least {MIN_MUTANTS} needed"
    )


@pytest.mark.timeout(WAIT_S + 60)
@pytest.mark.parametrize("job", _jobs("solution"))
def test_solution_scores_full_marks(curriculum_pool: CurriculumPool, job: Job) -> None:
    outcome = _graded(curriculum_pool, job)
    assert outcome.result is not None
    # a manual part is pending until the instructor scores it: full automatic marks
    pending = outcome.result.get("pending_points", 0)
    assert outcome.result["score"] + pending == outcome.result["max_score"], outcome.describe()


@pytest.mark.timeout(WAIT_S + 60)
@pytest.mark.parametrize("job", _jobs("mutant"))
def test_mutant_loses_exactly_its_checks(curriculum_pool: CurriculumPool, job: Job) -> None:
    outcome = _graded(curriculum_pool, job)
    lost = _lost(outcome)
    expected = set(job.submission.loses)
    assert lost == expected, (
        f"lost {sorted(lost)}, mutant.yaml says {sorted(expected)}: "
        f"unexpectedly lost {sorted(lost - expected)}, kept {sorted(expected - lost)}\n"
        + outcome.describe()
    )


@pytest.mark.timeout(WAIT_S + 60)
@pytest.mark.parametrize("job", _jobs("starter"))
def test_starter_is_gradable_and_partial(curriculum_pool: CurriculumPool, job: Job) -> None:
    outcome = _graded(curriculum_pool, job)
    assert outcome.result is not None
    assert 0 < outcome.result["score"] < outcome.result["max_score"], outcome.describe()


@pytest.mark.timeout(WAIT_S + 60)
@pytest.mark.parametrize("job", _mismatch_jobs())
def test_solution_configured_for_another_student_loses_the_variant_checks(
    curriculum_pool: CurriculumPool, job: Job
) -> None:
    """The solution reads ANA's datasheet while the grader serves BO's plant variant."""
    outcome = _graded(curriculum_pool, job)
    (check_id,) = job.submission.loses
    check = outcome.checks[check_id]
    assert not check["passed"] and check["points"] < check["max_points"], outcome.describe()
    # the check says what is wrong: the values seen are not the plant's
    assert check["message"] and check["message"] != "all parts passed", outcome.describe()
    # and only the variant is wrong: the payloads themselves are fine
    assert outcome.checks["contract"]["passed"], outcome.describe()
