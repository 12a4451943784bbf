"""Cluster grading against local grading, and the cluster path's per-job overhead, same run.

    python bench/cluster_grading.py [--students 20] [--workers 2] [--concurrency 5]
                                    [--lab labs/net-01-...]

Starts `redis-server` (appendonly, on a free port) and `--workers` real `iiotlab worker`
processes on this machine, then grades the same class (every student submits the
reference gateway) three ways:

1. baseline: one student alone through class mode locally, then three times alone through
   the cluster;
2. the class locally with `--parallel` = workers x concurrency;
3. the class through the workers (the same number of students at once).

A job's overhead is its time from class mode handing it over to its result being signed in
OUT, minus the time `iiotlab grade` ran on the worker (job.json): packing, sending, a
worker taking it, unpacking, returning the out folder, checking and signing. In the class
run, the time a job waits for a free worker is shown apart. On one machine the cluster
cannot be faster than local grading; it shows what a job costs beside the grading itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.cluster.cluster_helpers: redis-server and workers

from bench.class_grading import make_class  # noqa: E402
from grader.classmode import GradebookRow, StudentGrader, grade_class  # noqa: E402
from grader.cluster.celery_app import ClusterQueue  # noqa: E402
from grader.cluster.coordinator import ClusterGrader  # noqa: E402
from grader.signing import load_signing_key  # noqa: E402
from iiotlab.settings import Settings  # noqa: E402
from tests.cluster.cluster_helpers import RedisServer, Worker  # noqa: E402


async def timed(
    lab: Path, root: Path, count: int, *, parallel: int = 1, grader: StudentGrader | None = None
) -> tuple[float, Path, list[GradebookRow]]:
    roster, submissions = make_class(root, count)
    out = root / "out"
    start = time.perf_counter()
    rows = await grade_class(
        lab, roster, submissions, out, parallel=parallel, show_progress=False, grader=grader
    )
    elapsed = time.perf_counter() - start
    bad = [r for r in rows if not r.gradable or r.score != r.max_score]
    if bad:
        shown = [f"{r.student} {r.score}/{r.max_score:g} {r.status}" for r in bad][:3]
        print(f"  warning: {len(bad)} students not at full marks: {shown}")
        result = json.loads((out / bad[0].student / "result.json").read_text())
        print("  first:", [c["message"][:200] for c in result["checks"] if not c["passed"]])
    return elapsed, out, rows


def overheads(out: Path, rows: list[GradebookRow]) -> tuple[list[float], list[float]]:
    """Per job (job.json): the time waiting for a free worker (sent to started), and the
    rest of sent-to-collected beside `iiotlab grade` itself: packing, transfer, checking,
    signing. One machine here, so the coordinator's and the worker's clocks agree."""
    waits, costs = [], []
    for row in rows:
        job = json.loads((out / row.student / "job.json").read_text())
        wait = job["started_at"] - job["queued_at"]
        waits.append(wait)
        costs.append(job["collected_at"] - job["began_at"] - job["grading_s"] - wait)
    return waits, costs


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--lab", type=Path, default=ROOT / "labs" / "net-01-modbus-datasheet")
    args = parser.parse_args()
    slots = args.workers * args.concurrency
    with tempfile.TemporaryDirectory(prefix="iiotlab-bench-") as folder:
        root = Path(folder)
        redis = RedisServer(root / "redis")
        redis.start()
        workers = [
            Worker(
                redis.url,
                root / f"worker-{i}.log",
                concurrency=args.concurrency,
                visibility_timeout_s=1200,
            )
            for i in range(args.workers)
        ]
        try:
            for worker in workers:
                worker.wait_ready()
            settings = Settings.from_env()
            queue = ClusterQueue(redis.url)
            queue.check()
            cluster = ClusterGrader(queue, settings=settings, key=load_signing_key(settings))
            one_local, _, _ = await timed(args.lab, root / "one-local", 1)
            alone = []
            for attempt in range(3):
                one_cluster, one_out, one_rows = await timed(
                    args.lab, root / f"one-{attempt}", 1, grader=cluster
                )
                (wait,), (cost,) = overheads(one_out, one_rows)
                alone.append(wait + cost)
            local, _, _ = await timed(args.lab, root / "local", args.students, parallel=slots)
            whole, out, rows = await timed(
                args.lab, root / "cluster", args.students, grader=cluster
            )
            waits, costs = overheads(out, rows)
        finally:
            for worker in workers:
                worker.stop()
            redis.stop()
    print(f"lab: {args.lab.name}; {args.workers} workers x --concurrency {args.concurrency}")
    print(f"one student, local class mode:          {one_local:7.1f} s")
    print(f"one student, through the cluster:       {one_cluster:7.1f} s")
    print(
        f"  cluster overhead per job, alone:      {statistics.median(alone):7.2f} s "
        f"(median of 3: {', '.join(f'{a:.2f}' for a in alone)})"
    )
    print(f"baseline: {args.students} students, --parallel {slots}:   {local:7.1f} s")
    print(f"{args.students} students through the cluster:     {whole:7.1f} s")
    print(f"  cluster / local:                      {whole / local:7.2f} x")
    print(
        f"  per job in the class run: overhead median {statistics.median(costs):.2f} s "
        f"(max {max(costs):.2f}); waiting for a free worker median "
        f"{statistics.median(waits):.1f} s (max {max(waits):.1f})"
    )
    record = {
        "bench": "cluster_grading",
        "figures": {
            "cluster_class_s": round(whole, 1),
            "overhead_per_job_s": statistics.median(costs),
        },
        "baselines": {"local_class_s": round(local, 1)},
    }
    print(json.dumps(record))


if __name__ == "__main__":
    asyncio.run(main())
