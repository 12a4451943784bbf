"""The curriculum pool: one per session, grading only the jobs of the selected tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.labs.curriculum import CurriculumPool, Job

PARALLEL_ENV = "IIOTLAB_CURRICULUM_PARALLEL"
OUT_ENV = "IIOTLAB_CURRICULUM_OUT"
# Measured on 2 cores (docs/labs.md, *The curriculum harness*): alone, 284 gradings took
# 16.4 min of wall time and 1,217 CPU-s at 12 at a time (62 % of both cores); CPU alone
# floors it near 10 min. The pool starts at collection with EARLY_PARALLEL at a time
# beside the rest of the suite (10 beside it overloaded the machine: load 8, and checks
# measuring time failed), then runs DEFAULT_PARALLEL (14: load 5.5-6.5, 1.5 min less
# than 12). On a machine shared with other work,
# set IIOTLAB_CURRICULUM_PARALLEL lower.
DEFAULT_PARALLEL = 14
EARLY_PARALLEL = 5
EARLY_ENV = "IIOTLAB_CURRICULUM_EARLY"
SUMMARY = pytest.StashKey[str]()
POOL = pytest.StashKey[CurriculumPool]()


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


def _new_pool(
    config: pytest.Config, factory: pytest.TempPathFactory | None, *, early: bool
) -> CurriculumPool:
    parallel = int(os.environ.get(PARALLEL_ENV) or DEFAULT_PARALLEL)
    start = min(parallel, int(os.environ.get(EARLY_ENV) or EARLY_PARALLEL)) if early else None
    kept = os.environ.get(OUT_ENV)  # pytest keeps only its last 3 temporary folders
    if kept:
        root = Path(kept)
    elif factory is not None:
        root = factory.mktemp("curriculum")
    else:
        root = Path(tempfile.mkdtemp(prefix="iiotlab-curriculum-"))
    root.mkdir(parents=True, exist_ok=True)
    pool = CurriculumPool(Path(tempfile.mkdtemp(prefix="run-", dir=root)), parallel, start)
    config.stash[POOL] = pool
    return pool


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start grading as soon as the tests are collected, EARLY_PARALLEL at a time while the
    rest of the suite runs, and all DEFAULT_PARALLEL from the first curriculum test on.
    IIOTLAB_CURRICULUM_EARLY sets how many run early; 0 waits for the first curriculum
    test."""
    if os.environ.get(EARLY_ENV) == "0" or session.config.option.collectonly:
        return
    jobs = selected_jobs(session.items)
    if jobs:
        factory = getattr(session.config, "_tmp_path_factory", None)
        _new_pool(session.config, factory, early=True).submit(jobs)


@pytest.fixture(scope="session")
def curriculum_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> CurriculumPool:
    pool = request.config.stash.get(POOL, None)
    if pool is None:
        pool = _new_pool(request.config, tmp_path_factory, early=False)
        pool.submit(selected_jobs(request.session.items))
    pool.widen()
    return pool


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    pool = session.config.stash.get(POOL, None)
    if pool is not None:
        pool.close()
        session.config.stash[SUMMARY] = pool.stats.summary()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(SUMMARY, None)
    if summary:
        terminalreporter.write_sep("-", "curriculum harness")
        terminalreporter.write_line(summary)
