"""Class grading wall time: N students in parallel vs N x one student's time, same run.

    python bench/class_grading.py [--students 20] [--parallel 10] [--lab labs/net-01-...]

Every student submits the reference gateway (`iiotlab gateway run --from-env`). The
baseline is one student graded alone (class mode, --parallel 1), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from grader.classmode import grade_class

ROOT = Path(__file__).resolve().parents[1]
# the iiotlab of this interpreter, so the bench works without an activated venv
IIOTLAB = Path(sys.executable).with_name("iiotlab")


def make_class(root: Path, count: int) -> tuple[Path, Path]:
    students = [f"b{i:03d}" for i in range(count)]
    for student in students:
        folder = root / "submissions" / student
        folder.mkdir(parents=True)
        (folder / "gateway.cmd").write_text(f"{IIOTLAB} gateway run --from-env\n")
    roster = root / "roster.csv"
    roster.write_text("student\n" + "\n".join(students) + "\n")
    return roster, root / "submissions"


async def timed(lab: Path, roster: Path, submissions: Path, out: Path, parallel: int) -> float:
    start = time.perf_counter()
    rows = await grade_class(lab, roster, submissions, out, parallel=parallel, show_progress=False)
    elapsed = time.perf_counter() - start
    bad = [r for r in rows if not r.gradable or r.score != r.max_score]
    if bad:
        shown = [f"{r.student} {r.score:g}/{r.max_score:g} {r.status}" for r in bad][:3]
        print(f"  warning: {len(bad)} students not at full marks: {shown}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--lab", type=Path, default=ROOT / "labs" / "net-01-modbus-datasheet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iiotlab-bench-") as folder:
        root = Path(folder)
        one_roster, one_subs = make_class(root / "one", 1)
        single = await timed(args.lab, one_roster, one_subs, root / "one-out", 1)
        roster, subs = make_class(root / "class", args.students)
        whole = await timed(args.lab, roster, subs, root / "class-out", args.parallel)
    serial = single * args.students
    print(f"lab: {args.lab.name}")
    print(f"one student alone:                 {single:7.1f} s")
    print(f"baseline {args.students} x one student:        {serial:7.1f} s")
    print(f"{args.students} students, --parallel {args.parallel}:     {whole:7.1f} s")
    print(f"speed-up over one by one:          {serial / whole:7.2f} x")
    record = {
        "bench": "class_grading",
        "figures": {"class_s": round(whole, 1), "speedup": round(serial / whole, 2)},
        "baselines": {"one_by_one_s": round(serial, 1)},
    }
    print(json.dumps(record))


if __name__ == "__main__":
    asyncio.run(main())
