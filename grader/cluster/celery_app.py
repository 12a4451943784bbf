"""The one module that imports Celery, kombu and redis: the app, the worker, the queue.

It imports them when used, not when imported, so every module of iiotlab imports without
the `iiotlab[cluster]` extra; using it without the extra raises ClusterError naming it.

Celery and Redis settings that make a job survive what a grading cluster meets:

- late acknowledgement (`task_acks_late`) and one job per pool process at a time
  (`worker_prefetch_multiplier=1`): a job leaves the broker only when it is graded;
- `task_reject_on_worker_lost`: a pool process that dies (OOM killer) puts its job back;
- Redis `visibility_timeout`: the job of a worker whose machine died (SIGKILL, power)
  goes back to the queue that long after it was handed out, and another worker runs it;
- JSON only: a worker never unpickles what a message says;
- the broker's Redis keeps its data on disk (`appendonly yes`: docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from grader.cluster.extra import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    BrokerUnreachableError,
    ClusterError,
    require_cluster_extra,
)
from grader.cluster.jobs import GradingJob, JobOutcome, JobState
from grader.cluster.worker_job import INTERRUPT_GRACE_S, run_job

logger = logging.getLogger(__name__)

TASK_NAME = "iiotlab.grade_student"
QUEUE = "iiotlab-grading"
RESULT_EXPIRES_S = 7 * 24 * 3600


def _unreachable_errors() -> tuple[type[Exception], ...]:
    """What the client libraries raise when the broker does not answer."""
    import kombu.exceptions
    import redis.exceptions

    return (OSError, redis.exceptions.RedisError, kombu.exceptions.OperationalError)


def safe_url(url: str) -> str:
    """The broker URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def check_broker_url(url: str) -> str:
    if urlsplit(url).scheme not in ("redis", "rediss"):
        raise ClusterError(
            f"the cluster broker must be a Redis URL, got {safe_url(url)!r}: "
            "redis://HOST:PORT/DB (rediss:// for TLS; redis://:PASSWORD@HOST:PORT/DB)"
        )
    return url


def create_celery(broker_url: str, visibility_timeout_s: float) -> Any:
    """A Celery app on a Redis broker (and result backend) with the grading task."""
    require_cluster_extra()
    import celery

    restore_every = max(1.0, min(10.0, visibility_timeout_s / 10))
    app = celery.Celery("iiotlab", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # a job running through a broker outage finishes and stores its result after it
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        result_expires=RESULT_EXPIRES_S,
        task_default_queue=QUEUE,
    )

    @app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
    def grade_student(task: Any, job: dict[str, Any]) -> dict[str, Any]:
        parsed = GradingJob.model_validate(job)
        outcome = run_job(
            parsed,
            worker=str(task.request.hostname),
            visibility_timeout_s=visibility_timeout_s,
        )
        logger.info(
            "job %s: %s on %s %s in %.1f s%s",
            task.request.id,
            parsed.student,
            parsed.lab.id,
            outcome.status,
            outcome.grading_s,
            f" ({outcome.message})" if outcome.message else "",
        )
        return outcome.model_dump(mode="json")

    return app


def run_worker(broker_url: str, concurrency: int, visibility_timeout_s: float) -> None:
    """Serve grading jobs until stopped (SIGTERM/Ctrl-C: finish the running jobs first)."""
    app = create_celery(check_broker_url(broker_url), visibility_timeout_s)
    # Celery logs each task's return value: here a whole out folder in base64
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    app.worker_main(
        argv=[
            "worker",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            f"--hostname=iiotlab-{os.getpid()}@%h",
            f"--queues={QUEUE}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


class ClusterQueue:
    """The coordinator's side of the broker: send jobs and ask for their state."""

    def __init__(self, broker_url: str) -> None:
        self.url = check_broker_url(broker_url)
        self._app = create_celery(broker_url, DEFAULT_VISIBILITY_TIMEOUT_S)
        self._unreachable = _unreachable_errors()

    def check(self) -> None:
        """Raise ClusterError unless the broker answers."""
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=2, interval_start=0.2, timeout=5)
        except self._unreachable as exc:
            raise ClusterError(
                f"cannot reach the cluster broker {safe_url(self.url)}: {exc}; start Redis "
                "(docs/cluster.md) or correct --cluster"
            ) from None

    def submit(self, job: GradingJob) -> str:
        """Queue the job; its task id. BrokerUnreachableError when the broker does not answer."""
        try:
            # the hard limit is a backstop: the worker stops `iiotlab grade` at the time limit
            result = self._app.send_task(
                TASK_NAME,
                args=[job.model_dump(mode="json")],
                queue=QUEUE,
                time_limit=job.time_limit_s + INTERRUPT_GRACE_S + 5,
            )
        except self._unreachable as exc:
            raise BrokerUnreachableError(
                f"cannot send a job to {safe_url(self.url)}: {exc}"
            ) from None
        return str(result.id)

    def state(self, task_id: str) -> JobState:
        from celery import states

        result = self._app.AsyncResult(task_id)
        try:
            phase = result.state
            if phase == states.SUCCESS:
                return JobState("done", outcome=JobOutcome.model_validate(result.result))
            if phase in states.EXCEPTION_STATES:
                error = result.result
                return JobState("failed", error=f"{type(error).__name__}: {error}")
        except self._unreachable as exc:
            return JobState("unreachable", error=str(exc))
        except ValidationError as exc:
            return JobState("failed", error=f"the worker sent an outcome that is not valid: {exc}")
        return JobState("started" if phase == states.STARTED else "waiting")

    def forget(self, task_id: str) -> None:
        """Drop a collected result from Redis (results carry whole out folders)."""
        try:
            self._app.AsyncResult(task_id).forget()
        except self._unreachable:
            logger.warning("could not delete the result of job %s from the broker", task_id)

    def close(self) -> None:
        self._app.close()
