"""`iiotlab worker` and what `iiotlab class grade --cluster` builds. Celery loads lazily."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from grader.cluster.extra import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    VISIBILITY_MARGIN_S,
    require_cluster_extra,
)

if TYPE_CHECKING:
    from grader.cluster.coordinator import ClusterGrader

BROKER_HELP = "Redis broker URL: redis://HOST:PORT/DB (redis://:PASSWORD@HOST:PORT/DB)."


def worker(
    broker: str = typer.Option(..., "--broker", help=BROKER_HELP),
    concurrency: int = typer.Option(
        2, "--concurrency", min=1, max=64, help="Students graded at once (about one core each)."
    ),
    visibility_timeout: float = typer.Option(
        DEFAULT_VISIBILITY_TIMEOUT_S,
        "--visibility-timeout",
        min=VISIBILITY_MARGIN_S + 1,
        help="Seconds before a job handed to a worker that died goes to another worker; "
        "must exceed the longest job (lab duration + 120 s) by 20 s.",
    ),
) -> None:
    """Grade the jobs of `iiotlab class grade --cluster` on this machine until stopped."""
    require_cluster_extra()
    from grader.cluster.celery_app import run_worker

    run_worker(broker, concurrency, visibility_timeout)


@contextmanager
def cluster_grader(broker: str) -> Iterator[ClusterGrader]:
    """The ClusterGrader for `class grade --cluster URL`: checks the extra and the broker."""
    require_cluster_extra()
    from grader.cluster.celery_app import ClusterQueue
    from grader.cluster.coordinator import ClusterGrader
    from grader.signing import load_signing_key
    from iiotlab.settings import Settings

    queue = ClusterQueue(broker)
    try:
        queue.check()
        settings = Settings.from_env()
        yield ClusterGrader(queue, settings=settings, key=load_signing_key(settings))
    finally:
        queue.close()
