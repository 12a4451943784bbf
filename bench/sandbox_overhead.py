"""What the sandbox costs: grading with bubblewrap beside grading without it, same run.

    python bench/sandbox_overhead.py [--rounds 3] [--students 4] [--parallel 2]

Two figures, each side by side and alternating so machine load hits both alike:
- one gateway start to exit (`true`) through GatewayProcess: launcher, limits, sweep;
- a class of net-01 (6 s) graded with IIOTLAB_SANDBOX=bubblewrap and =none, wall time.
The baseline is the plain sandbox (environment scrub, limits, reaper), the floor any
grader that limits and sweeps a submission pays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.class_grading import make_class, timed
from grader.gateway_process import GatewayProcess
from grader.sandbox import PlainSandbox, RunLimits, Sandbox, Workspace, choose_sandbox
from grader.sandbox.kinds import bubblewrap_problem

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "labs" / "net-01-modbus-datasheet"


async def one_start(sandbox: Sandbox, folder: Path) -> float:
    datasheet = folder / "datasheet.json"
    datasheet.write_text("{}")
    workspace = Workspace.create(None, datasheet, None)
    process = GatewayProcess(
        "true",
        sandbox=sandbox,
        workspace=workspace,
        cwd=folder,
        env={"PATH": os.environ["PATH"]},
        log_file=folder / "gateway.log",
        limits=RunLimits(),
    )
    start = time.perf_counter()
    await process.start()
    await process.stop(grace_s=5.0)  # `true` has ended long before: stop waits for its exit
    elapsed = time.perf_counter() - start
    workspace.remove()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    if bubblewrap_problem() is not None:
        raise SystemExit(f"needs bubblewrap: {bubblewrap_problem()}")
    kinds: dict[str, Sandbox] = {
        "bubblewrap": choose_sandbox("bubblewrap", ()),
        "none": PlainSandbox(),
    }
    starts: dict[str, list[float]] = {name: [] for name in kinds}
    grading: dict[str, list[float]] = {name: [] for name in kinds}
    with tempfile.TemporaryDirectory(prefix="iiotlab-bench-") as folder:
        root = Path(folder)
        for _ in range(20):
            for name, sandbox in kinds.items():
                starts[name].append(await one_start(sandbox, root))
        roster, submissions = make_class(root / "class", args.students)
        for round_ in range(args.rounds):
            for name in kinds:
                os.environ["IIOTLAB_SANDBOX"] = name
                out = root / f"out-{name}-{round_}"
                grading[name].append(await timed(LAB, roster, submissions, out, args.parallel))
    print("gateway start to exit, median of 20:")
    for name, times in starts.items():
        print(f"  {name:<11} {statistics.median(times) * 1000:7.1f} ms")
    print(f"{args.students} students of {LAB.name}, --parallel {args.parallel}:")
    for name, times in grading.items():
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"  {name:<11} {statistics.median(times):7.1f} s median (runs: {runs})")
    extra = statistics.median(grading["bubblewrap"]) - statistics.median(grading["none"])
    print(f"bubblewrap costs {extra:+.1f} s per class over the plain sandbox")
    medians = {name: statistics.median(times) for name, times in grading.items()}
    record = {
        "bench": "sandbox_overhead",
        "figures": {"bubblewrap_class_s": round(medians["bubblewrap"], 1)},
        "baselines": {"plain_class_s": round(medians["none"], 1)},
    }
    print(json.dumps(record))


if __name__ == "__main__":
    asyncio.run(main())
