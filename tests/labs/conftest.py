"""The curriculum pool: one per session, grading only the jobs of the selected tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.curriculum import CurriculumPool, Job

PARALLEL_ENV = "IIOTLAB_CURRICULUM_PARALLEL"
OUT_ENV = "IIOTLAB_CURRICULUM_OUT"
# Measured on 2 cores (docs/labs.md, *The curriculum harness*): the whole curriculum, 284
# gradings, took 16.4 min of wall time and 1,217 CPU-s at 12 at a time (62 % of both
# cores); CPU alone floors it near 10 min. On a machine shared with other work, set
# IIOTLAB_CURRICULUM_PARALLEL lower.
DEFAULT_PARALLEL = 12
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
    kept = os.environ.get(OUT_ENV)  # pytest keeps only its last 3 temporary folders
    root = Path(kept) if kept else tmp_path_factory.mktemp("curriculum")
    root.mkdir(parents=True, exist_ok=True)
    pool = CurriculumPool(Path(tempfile.mkdtemp(prefix="run-", dir=root)), parallel)
    pool.submit(selected_jobs(request.session.items))
    yield pool
    pool.close()
    request.config.stash[SUMMARY] = pool.stats.summary()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(SUMMARY, None)
    if summary:
        terminalreporter.write_sep("-", "curriculum harness")
        terminalreporter.write_line(summary)
