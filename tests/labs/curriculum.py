"""The curriculum harness: every lab's solution, mutants and starter, graded for real.

Discovery goes through grader.catalog, so a new lab folder under labs/ is picked up without
editing a test. A lab's submissions are its `solution/`, its `starter/` and every
`mutants/<name>/` (a complete submission folder plus `mutant.yaml`: a bilingual
`description` and `loses`, the check ids the mistake must lose).

Gradings run in a `CurriculumPool`: one asyncio loop in a background thread that grades
jobs through class mode's seam (grader.classmode.LocalGrader: `iiotlab grade` in a
subprocess, `parallel` at a time). Parametrised tests wait for their own job's outcome, so
results arrive while other labs are still being graded, and the pool grades only the jobs
of the selected tests (`-k <lab id>` grades that lab alone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import resource
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grader.catalog import LabEntry, list_labs
from grader.classmode import LocalGrader, StudentJob
from grader.results import read_result_data
from grader.spec import LabSpec, load_lab

STUDENTS = ("ana", "bo", "chen")  # three students: three variants of every plant
MUTANTS_DIR = "mutants"
MUTANT_FILE = "mutant.yaml"
STUDENT_PLACEHOLDER = "STUDENT_ID"  # in a broker policy the submission ships
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", MUTANT_FILE)


class MutantFormatError(ValueError):
    """A mutants/<name>/mutant.yaml that does not say what the mutant must lose."""


@dataclass(frozen=True)
class Mutant:
    name: str
    folder: Path
    description: dict[str, str]
    loses: frozenset[str]


def load_mutant(folder: Path, check_ids: Sequence[str]) -> Mutant:
    """mutants/<name>/ with its mutant.yaml, validated against the lab's check ids."""
    path = folder / MUTANT_FILE
    if not path.is_file():
        raise MutantFormatError(f"{path}: missing (description {{en, zh}} and loses: [...])")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != {"description", "loses"}:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MutantFormatError(
            f"{path}: needs exactly the keys description and loses (found: {found})"
        )
    description = data["description"]
    if (
        not isinstance(description, dict)
        or set(description) != {"en", "zh"}
        or not all(isinstance(v, str) and v.strip() for v in description.values())
    ):
        raise MutantFormatError(f"{path}: description needs non-empty en and zh texts")
    loses = data["loses"]
    if not isinstance(loses, list) or not loses or not all(isinstance(c, str) for c in loses):
        raise MutantFormatError(f"{path}: loses must be a non-empty list of check ids")
    unknown = sorted(set(loses) - set(check_ids))
    if unknown:
        raise MutantFormatError(
            f"{path}: loses names {', '.join(unknown)}, not a check of lab.yaml "
            f"(checks: {', '.join(check_ids)})"
        )
    if not any(
        (folder / name).is_file() for name in ("gateway.cmd", "run.sh")
    ):  # a complete submission, not a patch
        raise MutantFormatError(f"{folder}: a mutant is a complete submission (gateway.cmd)")
    return Mutant(folder.name, folder, dict(description), frozenset(loses))


@dataclass(frozen=True)
class Lab:
    """A lab folder found through grader.catalog; `error` when its lab.yaml does not load."""

    id: str
    path: Path
    spec: LabSpec | None
    error: str | None = None

    @property
    def check_ids(self) -> list[str]:
        return [c.id for c in self.spec.checks] if self.spec else []

    def mutant_folders(self) -> list[Path]:
        root = self.path / MUTANTS_DIR
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def discover_labs(entries: Iterable[LabEntry] | None = None) -> list[Lab]:
    """Every built-in lab (grader.catalog), each with its spec or the error loading it."""
    labs = []
    for entry in entries if entries is not None else list_labs():
        try:
            labs.append(Lab(entry.id, entry.path, load_lab(entry.path)))
        except Exception as exc:  # reported by a test naming the lab, not a collection error
            labs.append(Lab(entry.id, entry.path, None, f"{type(exc).__name__}: {exc}"))
    return labs


@dataclass(frozen=True)
class Submission:
    """One submission folder of a lab: kind solution, starter, mutant or mismatch."""

    lab: str
    lab_path: Path
    kind: str
    name: str
    folder: Path
    loses: frozenset[str] = frozenset()
    duration_s: float = 0.0
    # mismatch: the solution run with another student's datasheet (that student's id)
    configured_for: str | None = None
    # slots of the pool a grading takes: a line of twenty PLCs is four plants' work
    weight: int = 1


@dataclass(frozen=True)
class Job:
    submission: Submission
    student: str

    @property
    def key(self) -> str:
        return f"{self.submission.lab}/{self.submission.name}/{self.student}"


def lab_submissions(lab: Lab) -> list[Submission]:
    """The solution, the mutants (those whose mutant.yaml loads) and the starter of a lab."""
    if lab.spec is None:
        return []
    duration = lab.spec.duration_s
    weight = lab_weight(len(lab.spec.plants))
    found = [Submission(lab.id, lab.path, "solution", "solution", lab.path / "solution")]
    for folder in lab.mutant_folders():
        try:
            mutant = load_mutant(folder, lab.check_ids)
        except MutantFormatError:
            continue  # test_mutant_format names the problem
        found.append(
            Submission(lab.id, lab.path, "mutant", f"mutant-{mutant.name}", folder, mutant.loses)
        )
    found.append(Submission(lab.id, lab.path, "starter", "starter", lab.path / "starter"))
    return [
        Submission(s.lab, s.lab_path, s.kind, s.name, s.folder, s.loses, duration, weight=weight)
        for s in found
    ]


DEVICES_PER_SLOT = 10


def lab_weight(devices: int) -> int:
    """Pool slots of one grading: one per ten devices of the line (at least one).

    A grading's simulators, proxies and broker run in its one grader process. int-02's
    twenty PLCs cost 5.6 CPU-s over its 34 s, about 1.5 single-plant gradings (4.3 CPU-s
    over 40 s), but in one process: twelve of them at once (their own lab's jobs, queued
    together) took both cores and starved the simulators whose timing the checks measure.
    """
    return max(1, math.ceil(devices / DEVICES_PER_SLOT))


def interleaved(jobs: Iterable[Job]) -> list[Job]:
    """Longest labs first; within a duration, one job of each lab in turn, so that the
    gradings of one heavy lab are spread over the run instead of all running together."""
    by_lab: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda j: (-j.submission.duration_s, j.key)):
        by_lab.setdefault(job.submission.lab, []).append(job)
    ordered: list[Job] = []
    durations = sorted({q[0].submission.duration_s for q in by_lab.values()}, reverse=True)
    for duration in durations:
        queues = [q for q in by_lab.values() if q and q[0].submission.duration_s == duration]
        while any(queues):
            for queue in queues:
                if queue:
                    ordered.append(queue.pop(0))
    return ordered


@dataclass
class Outcome:
    """What one grading left: the result (None: none written), times, log tails."""

    job: Job
    result: dict[str, Any] | None
    wall_s: float
    out: Path
    error: str | None = None

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in (self.result or {}).get("checks", [])}

    def describe(self) -> str:
        """Per-check verdicts and messages, and the logs' tails: enough to diagnose a lab."""
        lines = [f"{self.job.key} graded in {self.wall_s:.0f} s, out folder {self.out}"]
        if self.error:
            lines.append(f"harness error: {self.error}")
        data = self.result
        if data is None:
            lines.append("no result.json")
        else:
            lines.append(
                f"gradable={data.get('gradable')} score={data.get('score')}/"
                f"{data.get('max_score')} reason={data.get('reason')}"
            )
            if data.get("submission_error"):
                lines.append(f"submission error: {data['submission_error'].get('en')}")
            for check in data.get("checks", []):
                verdict = "PASS" if check["passed"] else "FAIL"
                lines.append(
                    f"  {verdict} {check['id']} {check['points']:g}/{check['max_points']:g}: "
                    f"{check['message']}"
                )
        for log in ("gateway.log", "grader.log"):
            path = self.out / log
            if path.is_file():
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                lines.append(f"--- {log} (last {len(tail)} lines)")
                lines.extend(tail)
        return "\n".join(lines)


def prepare_folder(job: Job, target: Path) -> Path:
    """The job's submission copied to `target` (a mismatch gets the other datasheet)."""
    shutil.copytree(job.submission.folder, target, ignore=IGNORED)
    spec = load_lab(job.submission.lab_path)
    policy = spec.broker.from_submission
    if policy and (target / policy).is_file():
        # what the README tells each student to do: put their id where STUDENT_ID stands
        text = (target / policy).read_text(encoding="utf-8")
        (target / policy).write_text(text.replace(STUDENT_PLACEHOLDER, job.student), "utf-8")
    other = job.submission.configured_for
    if other is not None:
        write_datasheet(job.submission.lab_path, other, target / "datasheet-of-other.json")
        command = (target / "gateway.cmd").read_text(encoding="utf-8").strip()
        (target / "gateway.cmd").write_text(
            f'IIOTLAB_DATASHEET="$PWD/datasheet-of-other.json" {command}\n', encoding="utf-8"
        )
    return target


def write_datasheet(lab_path: Path, student: str, path: Path) -> None:
    """The datasheet the grader gives `student` on this lab (same seed, same variant)."""
    from iiotlab.settings import Settings
    from simulators.variants import build_datasheet

    spec = load_lab(lab_path)
    sheet = build_datasheet(spec.plant, spec.id, student, Settings.from_env().course_secret)
    path.write_text(sheet.model_dump_json(exclude_none=True, indent=2), encoding="utf-8")


@dataclass
class PoolStats:
    parallel: int
    start_parallel: int | None = None
    widened: float | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cpu_before: float = field(default_factory=lambda: _children_cpu())
    cpu_s: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> str:
        wall = (self.finished or time.monotonic()) - self.started
        per_lab: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            per_lab.setdefault(outcome.job.submission.lab, []).append(outcome.wall_s)
        parallel = f"{self.parallel}"
        if self.start_parallel is not None and self.widened is not None:
            early = self.widened - self.started
            parallel = f"{self.start_parallel} for {early:.0f} s beside the suite, then {parallel}"
        lines = [
            f"curriculum: {len(self.outcomes)} gradings of {len(per_lab)} labs, parallel "
            f"{parallel}: wall {wall:.0f} s, CPU {self.cpu_s:.0f} s (user+sys of "
            "every child process of pytest that ended meanwhile: the gradings, and the "
            "rest of the suite's when they overlapped it)"
        ]
        for lab, times in sorted(per_lab.items()):
            lines.append(
                f"  {lab:<36} {len(times):>3} gradings, each {min(times):.0f}-{max(times):.0f} s"
            )
        return "\n".join(lines)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WeightedGate:
    """A semaphore whose holders take several slots; jobs start in the order they ask."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = slots
        self._changed = asyncio.Condition()
        self._queue: list[object] = []

    @contextlib.asynccontextmanager
    async def taking(self, weight: int) -> AsyncIterator[None]:
        weight = min(weight, self.slots)
        ticket = object()
        async with self._changed:
            self._queue.append(ticket)
            await self._changed.wait_for(lambda: self._queue[0] is ticket and self._free >= weight)
            self._queue.pop(0)
            self._free -= weight
            self._changed.notify_all()
        try:
            yield
        finally:
            async with self._changed:
                self._free += weight
                self._changed.notify_all()

    async def resize(self, slots: int) -> None:
        """More (or fewer) slots from now on; holders keep what they took."""
        async with self._changed:
            self._free += slots - self.slots
            self.slots = slots
            self._changed.notify_all()


class CurriculumPool:
    """Grades jobs concurrently in a background event loop; `outcome(job)` waits for one."""

    def __init__(self, root: Path, parallel: int, start_parallel: int | None = None) -> None:
        """`start_parallel`: how many at a time until `widen()` (the rest of the suite is
        running meanwhile), then `parallel`."""
        self.root = root
        self.parallel = parallel
        self.stats = PoolStats(parallel, start_parallel)
        # the pool's own gate, so that a job's clock starts when its grading does
        self._slots = WeightedGate(start_parallel or parallel)
        self._grader = LocalGrader(max(parallel, start_parallel or 0))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._futures: dict[str, concurrent.futures.Future[Outcome]] = {}
        self._pending = 0
        self._lock = threading.Lock()

    def widen(self) -> None:
        """From now on, `parallel` at a time."""
        if self._slots.slots != self.parallel:
            self.stats.widened = time.monotonic()
            asyncio.run_coroutine_threadsafe(self._slots.resize(self.parallel), self._loop).result(
                timeout=10
            )

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue jobs, longest lab first (a short lab fills the gaps at the end)."""
        for job in interleaved(jobs):
            if job.key in self._futures:
                continue
            with self._lock:
                self._pending += 1
            self._futures[job.key] = asyncio.run_coroutine_threadsafe(self._grade(job), self._loop)

    def outcome(self, job: Job, timeout: float) -> Outcome:
        if job.key not in self._futures:
            self.submit([job])
        return self._futures[job.key].result(timeout=timeout)

    async def _grade(self, job: Job) -> Outcome:
        base = self.root / job.submission.lab / job.submission.name
        out = base / "out" / job.student
        out.mkdir(parents=True, exist_ok=True)
        async with self._slots.taking(job.submission.weight):
            started = time.monotonic()
            error = await self._run(job, base, out)
            wall = time.monotonic() - started
        result = read_result_data(out / "result.json") if (out / "result.json").is_file() else None
        outcome = Outcome(job, result, wall, out, error)
        with self._lock:
            self.stats.outcomes.append(outcome)
            self._pending -= 1
            if self._pending == 0:
                self.stats.finished = time.monotonic()
                self.stats.cpu_s = _children_cpu() - self.stats.cpu_before
        return outcome

    async def _run(self, job: Job, base: Path, out: Path) -> str | None:
        try:
            folder = prepare_folder(job, base / "submissions" / job.student)
            student_job = StudentJob(
                job.submission.lab_path.resolve(),
                job.student,
                folder.resolve(),
                out,
                (out.parent, folder.parent),
            )
            # the budget of a grading: the lab, the grader's start and stop, a busy machine
            async with asyncio.timeout(job.submission.duration_s * 3 + 240):
                await self._grader.grade(student_job)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        """Cancel what is left (LocalGrader kills a cancelled grading's process), then stop."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._pending:
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(timeout=60)
            with self._lock:
                self.stats.finished = time.monotonic()
                self.stats.cpu_s = _children_cpu() - self.stats.cpu_before
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
