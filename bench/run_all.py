"""Run every bench that ends with a JSON line, keep the lines, chart them beside the last run.

Each bench prints, as its last line, `{"bench": NAME, "figures": {...}, "baselines": {...}}`.
This runs them one after another (never together: they measure the same two cores), writes
their lines to `OUT/run-<UTC time>.jsonl` and draws `OUT/chart.svg`: one row per figure
and baseline, this run's value beside the previous run's (the newest earlier
`run-*.jsonl` in OUT). A bench that fails or prints no line is recorded with its error.

Run: python bench/run_all.py [--quick] [--all] [--only NAME ...] [--out bench/results]
(--all adds the grading benches, minutes each).
The numbers are for looking at; no test asserts them.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# name: (arguments, quick arguments, limit in seconds)
BENCHES: dict[str, tuple[list[str], list[str], float]] = {
    "gateway_throughput": ([], ["--rounds", "1", "--drain", "50000", "--drain-rounds", "1"], 1800),
    "platform_ingest": ([], ["--quick"], 600),
    "opcua_notifications": ([], ["--seconds", "5"], 600),
    "ui_latency": ([], ["--messages", "50"], 300),
    "sim_capacity": ([], ["--quick"], 600),
    "opcua_latency": ([], ["--seconds", "5"], 300),
    # the grading benches: minutes each; with --all or --only
    "class_grading": ([], ["--students", "4", "--parallel", "4"], 1200),
    "sandbox_overhead": ([], ["--rounds", "1"], 1200),
    "cluster_grading": ([], ["--students", "4"], 1200),
    "exam_capacity": ([], ["--counts", "4,8"], 1800),
}
GRADING = ("class_grading", "sandbox_overhead", "cluster_grading", "exam_capacity")


def run_bench(name: str, quick: bool) -> dict[str, Any]:
    arguments, quick_arguments, limit = BENCHES[name]
    command = [sys.executable, str(HERE / f"{name}.py"), *(quick_arguments if quick else arguments)]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return {"bench": name, "error": f"did not finish within {limit:g} s"}
    print(done.stdout, end="", flush=True)
    for line in reversed(done.stdout.strip().splitlines()):
        if line.startswith('{"bench"'):
            record: dict[str, Any] = json.loads(line)
            return record
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"bench": name, "error": f"exit {done.returncode}, no JSON line: {' | '.join(tail)}"}


def previous_run(out: Path, current: Path) -> dict[str, dict[str, Any]]:
    runs = sorted(p for p in out.glob("run-*.jsonl") if p != current)
    if not runs:
        return {}
    records = [json.loads(line) for line in runs[-1].read_text().splitlines() if line.strip()]
    return {r["bench"]: r for r in records}


def rows_of(record: dict[str, Any]) -> dict[str, float]:
    rows: dict[str, float] = {}
    for group in ("figures", "baselines"):
        for key, value in (record.get(group) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows[f"{group[:-1] if group == 'figures' else 'baseline'}: {key}"] = float(value)
    return rows


def chart(records: list[dict[str, Any]], before: dict[str, dict[str, Any]], title: str) -> str:
    """An SVG: per bench, one row per figure/baseline, bars of this run and the last."""
    width, label_w, bar_w, row_h = 980, 420, 440, 34
    parts: list[str] = []
    y = 50
    for record in records:
        name = record["bench"]
        parts.append(f'<text x="10" y="{y}" class="bench">{html.escape(name)}</text>')
        y += 10
        if "error" in record:
            parts.append(
                f'<text x="20" y="{y + 16}" class="err">{html.escape(record["error"][:120])}</text>'
            )
            y += 34
            continue
        now_rows, old_rows = rows_of(record), rows_of(before.get(name, {}))
        for key, value in now_rows.items():
            old = old_rows.get(key)
            top = max(value, old or 0.0) or 1.0
            parts.append(f'<text x="20" y="{y + 14}" class="key">{html.escape(key)}</text>')
            length = bar_w * value / top
            parts.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="12" class="now"/>'
                f'<text x="{label_w + length + 6:.1f}" y="{y + 13}" class="val">{value:,.6g}</text>'
            )
            if old is not None:
                length = bar_w * old / top
                parts.append(
                    f'<rect x="{label_w}" y="{y + 16}" width="{length:.1f}" height="10" '
                    f'class="old"/><text x="{label_w + length + 6:.1f}" y="{y + 25}" '
                    f'class="oldval">{old:,.6g} (last run)</text>'
                )
            y += row_h
        y += 14
    style = (
        "text{font-family:sans-serif}.bench{font-size:15px;font-weight:bold}"
        ".key{font-size:12px}.val{font-size:12px}.oldval{font-size:10px;fill:#777}"
        ".now{fill:#0b6bcb}.old{fill:#bbb}.err{font-size:12px;fill:#b00}"
        ".title{font-size:16px;font-weight:bold}"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}" '
        f'viewBox="0 0 {width} {y + 10}"><style>{style}</style>'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="10" y="24" class="title">{html.escape(title)}</text>{"".join(parts)}</svg>'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs of each bench")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="these benches")
    parser.add_argument("--all", action="store_true", help="also the grading benches")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"run-{stamp}.jsonl"
    names = args.only or [n for n in BENCHES if args.all or n not in GRADING]
    records = [run_bench(name, args.quick) for name in names]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    title = f"iiotlab benches {stamp}{' (quick)' if args.quick else ''}: blue this run, grey last"
    svg = chart(records, previous_run(args.out, path), title)
    (args.out / "chart.svg").write_text(svg)
    print(f"results: {path}\nchart: {args.out / 'chart.svg'}")


if __name__ == "__main__":
    main()
