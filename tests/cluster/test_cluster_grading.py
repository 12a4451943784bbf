"""Class grading through real workers: `redis-server` on a free port, `iiotlab worker`s.

net-01 (6 s) with its solution for some students and its starter for others. The
coordinator signs with its own key file, which the workers never see; they share the
course secret. Scores must equal a local class run of the same students.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.classmode import GradebookRow, grade_class, verify_gradebook
from grader.cluster.celery_app import QUEUE, ClusterQueue
from grader.cluster.coordinator import ClusterGrader
from grader.signing import load_signing_key, write_new_key
from iiotlab.settings import Settings
from tests.cluster.cluster_helpers import (
    REDIS_SERVER,
    RedisServer,
    Worker,
    grading_processes,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(REDIS_SERVER).is_file(), reason="needs Debian's redis-server"),
]

ROOT = Path(__file__).resolve().parents[2]
NET01 = ROOT / "labs" / "net-01-modbus-datasheet"
SECRET = "cluster-test-course-secret"
# a 6 s lab; one run takes ~9 s alone, and 20-25 s beside the suite's background gradings
TIME_LIMIT_S = 40.0
# what a killed worker's jobs wait before another worker runs them (time limit + margin)
VISIBILITY_TIMEOUT_S = 60.0


def make_class(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """Students s0..: even ones submit the solution, odd ones the starter."""
    submissions = tmp_path / "submissions"
    students = [f"s{i}" for i in range(count)]
    for i, student in enumerate(students):
        shutil.copytree(NET01 / ("solution" if i % 2 == 0 else "starter"), submissions / student)
    roster = tmp_path / "roster.csv"
    roster.write_text("student\n" + "".join(f"{s}\n" for s in students))
    return roster, submissions


@pytest.fixture
def coordinator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This process is the coordinator: its own signing key and data folder."""
    key = tmp_path / "keys" / "signing-key.pem"
    write_new_key(key)
    monkeypatch.setenv("IIOTLAB_SIGNING_KEY", str(key))
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "coordinator"))
    monkeypatch.setenv("IIOTLAB_COURSE_SECRET", SECRET)
    return Settings.from_env()


def worker_env(tmp_path: Path) -> dict[str, str]:
    """A grading machine's environment: the course secret, no signing key of the course."""
    env = {k: v for k, v in os.environ.items() if k != "IIOTLAB_SIGNING_KEY"}
    env |= {"IIOTLAB_COURSE_SECRET": SECRET, "IIOTLAB_DATA_DIR": str(tmp_path / "worker-data")}
    return env


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def start_workers(
    tmp_path: Path,
    redis_server: RedisServer,
    names: list[str],
    concurrency: int = 2,
    visibility_timeout_s: float = VISIBILITY_TIMEOUT_S,
) -> list[Worker]:
    workers = [
        Worker(
            redis_server.url,
            tmp_path / f"{name}.log",
            concurrency=concurrency,
            visibility_timeout_s=visibility_timeout_s,
            env=worker_env(tmp_path),
        )
        for name in names
    ]
    for worker in workers:
        worker.wait_ready()
    return workers


@pytest.fixture
def queue(redis_server: RedisServer) -> Iterator[ClusterQueue]:
    queue = ClusterQueue(redis_server.url)
    queue.check()
    yield queue
    queue.close()


def cluster_grader(queue: ClusterQueue, settings: Settings, time_limit_s: float) -> ClusterGrader:
    key = load_signing_key(settings)
    return ClusterGrader(queue, settings=settings, key=key, time_limit_s=time_limit_s)


def gradebook(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def scores(rows: list[GradebookRow]) -> dict[str, float | None]:
    return {row.student: row.score for row in rows}


@pytest.mark.timeout(300)
async def test_a_class_through_two_workers_one_killed_mid_job(
    tmp_path: Path,
    coordinator_env: Settings,
    redis_server: RedisServer,
    queue: ClusterQueue,
) -> None:
    roster, submissions = make_class(tmp_path, 6)
    workers = start_workers(tmp_path, redis_server, ["worker-a", "worker-b"])
    doomed, survivor = workers
    grader = cluster_grader(queue, coordinator_env, TIME_LIMIT_S)
    out = tmp_path / "cluster-out"

    async def kill_then_grade_locally() -> tuple[list[str], list[GradebookRow]]:
        """SIGKILL worker A (and its pool) a few seconds into its first jobs; then, while
        its jobs wait out the visibility timeout, grade the same class locally."""
        await asyncio.to_thread(wait_for, lambda: "received" in doomed.text(), 60, "a job")
        await asyncio.sleep(3)
        doomed.kill()
        lost = re.findall(r"grade_student\[([0-9a-f-]+)\] received", doomed.text())
        local = tmp_path / "local-out"
        rows = await grade_class(NET01, roster, submissions, local, show_progress=False)
        return lost, rows

    started = time.monotonic()
    try:
        cluster_rows, (lost, local_rows) = await asyncio.gather(
            grade_class(NET01, roster, submissions, out, show_progress=False, grader=grader),
            kill_then_grade_locally(),
        )
    finally:
        for worker in workers:
            worker.stop()
    cluster_s = time.monotonic() - started

    assert lost, "worker A had received no job when it was killed"
    assert " graded in " not in doomed.text()  # it finished none of them
    # every student once, graded, with the score of a local run
    book = gradebook(out)
    assert [row["student"] for row in book] == [f"s{i}" for i in range(6)]
    assert all(row.gradable for row in cluster_rows), [r.status for r in cluster_rows]
    assert scores(cluster_rows) == scores(local_rows)
    assert {scores(cluster_rows)[f"s{i}"] for i in (0, 2, 4)} == {100.0}
    assert all(scores(cluster_rows)[f"s{i}"] == 20.0 for i in (1, 3, 5))
    # the killed worker's jobs ran again on the survivor
    jobs = {s: json.loads((out / s / "job.json").read_text()) for s in scores(cluster_rows)}
    rerun = [job for job in jobs.values() if job["task_id"] in lost]
    assert rerun and all(job["worker"] in survivor.text() for job in rerun)
    # results signed by the coordinator's key, which no worker had
    assert verify_gradebook(out, load_signing_key(coordinator_env).private.public_key()) == []
    # the jobs came back after the visibility timeout, not the default 1,200 s one
    assert cluster_s < 250, f"the class took {cluster_s:.0f} s"


@pytest.mark.timeout(120)
async def test_a_pool_process_killed_mid_job_puts_its_job_back(
    tmp_path: Path,
    coordinator_env: Settings,
    redis_server: RedisServer,
    queue: ClusterQueue,
) -> None:
    """The OOM killer's case: the worker lives, the pool process grading a job dies; the
    job goes back to the queue at once (task_reject_on_worker_lost) and is graded."""
    roster, submissions = make_class(tmp_path, 1)
    (worker,) = start_workers(tmp_path, redis_server, ["worker"], concurrency=1)
    grader = cluster_grader(queue, coordinator_env, TIME_LIMIT_S)
    out = tmp_path / "out"
    grading = asyncio.create_task(
        grade_class(NET01, roster, submissions, out, show_progress=False, grader=grader)
    )
    try:

        def busy() -> bool:
            return bool(grading_processes(worker))

        await asyncio.to_thread(wait_for, busy, 30, "the worker to grade")
        await asyncio.sleep(2)
        (pool_process,) = set(grading_processes(worker).values())
        os.kill(pool_process, signal.SIGKILL)
        (row,) = await asyncio.wait_for(grading, 60)
    finally:
        worker.stop()
    assert row.gradable and row.score == 100.0
    assert "WorkerLostError" in worker.text()
    assert worker.text().count(" graded in ") == 1
    assert verify_gradebook(out, load_signing_key(coordinator_env).private.public_key()) == []


@pytest.mark.timeout(180)
def test_queued_jobs_survive_a_redis_restart(
    tmp_path: Path, coordinator_env: Settings, redis_server: RedisServer
) -> None:
    """`iiotlab class grade --cluster` queues three jobs with no worker up; the submissions
    folder goes away and Redis restarts; a worker then grades them all, and
    `iiotlab class verify` accepts the gradebook."""
    roster, submissions = make_class(tmp_path, 3)
    out = tmp_path / "out"
    iiotlab = [sys.executable, "-m", "iiotlab.cli"]
    with (tmp_path / "coordinator.log").open("wb") as log:
        coordinator = subprocess.Popen(
            [
                *iiotlab,
                "class",
                "grade",
                "--lab",
                "net-01-modbus-datasheet",
                "--roster",
                str(roster),
                "--submissions",
                str(submissions),
                "--out",
                str(out),
                "--cluster",
                redis_server.url,
            ],
            stdout=log,
            stderr=log,
        )
    try:
        wait_for(lambda: redis_server.command("LLEN", QUEUE) == "3", 30, "3 queued jobs")
        shutil.rmtree(submissions)  # workers share no files with the coordinator: jobs carry them
        redis_server.stop()
        redis_server.start()
        assert redis_server.command("LLEN", QUEUE) == "3"
        # the default time limit (6 s + 120 s) needs a visibility timeout of 146 s or more
        (worker,) = start_workers(tmp_path, redis_server, ["worker"], 3, visibility_timeout_s=150)
        try:
            assert coordinator.wait(timeout=120) == 0, (tmp_path / "coordinator.log").read_text()
        finally:
            worker.stop()
    finally:
        coordinator.kill()
        coordinator.wait()
    book = {row["student"]: row for row in gradebook(out)}
    assert {s: row["score"] for s, row in book.items()} == {"s0": "100", "s1": "20", "s2": "100"}
    verified = subprocess.run([*iiotlab, "class", "verify", str(out)], capture_output=True)
    assert verified.returncode == 0, verified.stderr


@pytest.mark.timeout(120)
async def test_what_a_worker_cannot_deliver_is_a_signed_not_gradable_row(
    tmp_path: Path,
    coordinator_env: Settings,
    redis_server: RedisServer,
    queue: ClusterQueue,
) -> None:
    """An instructor's own lab travels with the jobs to a worker set up with another course
    secret: a job past its time limit, and a result for another variant of the plant, are
    not-gradable rows that say why, signed by the coordinator."""
    own_lab = tmp_path / "my-labs" / NET01.name
    shutil.copytree(NET01, own_lab)
    roster, submissions = make_class(tmp_path, 1)
    env = worker_env(tmp_path) | {"IIOTLAB_COURSE_SECRET": "another-course"}
    worker = Worker(redis_server.url, tmp_path / "worker.log", visibility_timeout_s=150, env=env)
    worker.wait_ready()
    public_key = load_signing_key(coordinator_env).private.public_key()
    try:
        (late,), (other,) = await asyncio.gather(
            grade_class(
                own_lab,
                roster,
                submissions,
                tmp_path / "late",
                show_progress=False,
                grader=cluster_grader(queue, coordinator_env, 3),
            ),
            grade_class(
                own_lab,
                roster,
                submissions,
                tmp_path / "other",
                show_progress=False,
                grader=cluster_grader(queue, coordinator_env, 126),
            ),
        )
    finally:
        worker.stop()
    assert not late.gradable and late.score is None
    assert late.status.startswith("not gradable: the grading job passed its time limit of 3 s")
    assert "grader.log" in os.listdir(tmp_path / "late" / "s0")  # the worker's logs came back
    assert not other.gradable and "IIOTLAB_COURSE_SECRET differs" in other.status
    assert (tmp_path / "other" / "s0" / "gateway.log").is_file()  # it did grade
    for out in (tmp_path / "late", tmp_path / "other"):
        assert verify_gradebook(out, public_key) == []
