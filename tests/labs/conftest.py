"""The curriculum pool: one per session, grading only the jobs of the selected tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.labs.curriculum import CurriculumPool, Job

PARALLEL_ENV = "IIOTLAB_CURRICULUM_PARALLEL"
# Measured on 2 cores (docs/labs.md, *The curriculum harness*): a grading mostly waits for
# its lab's scenario (about 1 core-second of CPU per 10 s of lab), so 8 at a time keep
# both cores busy without starving the timing of any grading.
DEFAULT_PARALLEL = 8
SUMMARY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "curriculum: grades a lab's solution, mutants or starter for real (tests/labs)"
    )


def selected_jobs(items: list[pytest.Item]) -> list[Job]:
    """The jobs of the tests that will run (after -k / -m / node id selection)."""
    jobs = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        job = callspec.params.get("job") if callspec is not None else None
        if isinstance(job, Job):
            jobs.append(job)
    return jobs


@pytest.fixture(scope="session")
def curriculum_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CurriculumPool]:
    parallel = int(os.environ.get(PARALLEL_ENV) or DEFAULT_PARALLEL)
    pool = CurriculumPool(tmp_path_factory.mktemp("curriculum"), parallel)
    pool.submit(selected_jobs(request.session.items))
    yield pool
    pool.close()
    request.config.stash[SUMMARY] = pool.stats.summary()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(SUMMARY, None)
    if summary:
        terminalreporter.write_sep("-", "curriculum harness")
        terminalreporter.write_line(summary)
