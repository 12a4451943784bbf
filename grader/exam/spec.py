"""exam.yaml: an exam's tasks (labs with points and attempts), time limit, pass mark,
feedback and which attempt counts, validated like lab.yaml (file, line, key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from grader.catalog import resolve_lab
from grader.spec import POSITIONS, Bilingual, LabSpec, _line_of, _validation_error, load_lab
from iiotlab.errors import ConfigError

Feedback = Literal["full", "score", "none"]
Counts = Literal["best", "last"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Frozen):
    lab: str = Field(min_length=1, description="a lab id (or folder) resolved like `iiotlab grade`")
    points: float = Field(gt=0, description="the task's points in the exam")
    attempts: int = Field(default=1, ge=1, le=100)


class ExamSpec(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    title: Bilingual
    position: int
    time_limit_min: float = Field(gt=0, le=24 * 60)
    pass_mark: float = Field(ge=0, le=100, description="percent of the exam's total points")
    feedback: Feedback = "score"
    counts: Counts = "best"
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)

    @field_validator("position", mode="before")
    @classmethod
    def _position(cls, value: object) -> object:
        by_name = {name: number for number, name in POSITIONS.items()}
        if isinstance(value, str) and value in by_name:
            return by_name[value]
        if isinstance(value, int) and value not in POSITIONS:
            raise ValueError(f"position {value} is not one of {sorted(POSITIONS)}")
        return value

    @property
    def max_points(self) -> float:
        return sum(task.points for task in self.tasks)

    @property
    def position_name(self) -> str:
        return POSITIONS[self.position]


@dataclass(frozen=True)
class ExamTask:
    """A task with its lab resolved: `id` is the lab's id (unique within the exam)."""

    spec: TaskSpec
    lab_path: Path
    lab: LabSpec

    @property
    def id(self) -> str:
        return self.lab.id


@dataclass(frozen=True)
class Exam:
    spec: ExamSpec
    tasks: tuple[ExamTask, ...]
    path: Path

    def task(self, task_id: str) -> ExamTask | None:
        return next((t for t in self.tasks if t.id == task_id), None)


def _parse(path: Path) -> tuple[Any, yaml.Node]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError("exam file not found", file=path, expected="an exam.yaml") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", file=path, line=line) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError("an exam file must be a YAML mapping", file=path, line=1)
    return data, node


def _unsupported(lab: LabSpec) -> str | None:
    """Why a lab cannot be an exam task yet, or None."""
    if lab.broker.from_submission or lab.broker.submission_conf:
        return "it grades a file of the submission (broker policy / mosquitto.conf)"
    if any(check.kind.startswith("artifact_") for check in lab.checks):
        return "it grades files the gateway writes to IIOTLAB_OUTPUT_DIR (on the workstation)"
    if any(check.kind == "manual" for check in lab.checks):
        return "it has a part the instructor scores by hand (manual); exams score automatically"
    if lab.modbus_proxy:
        return "the grader would have to reach a proxy on the candidate's workstation"
    return None


def _resolve_task(
    path: Path, node: yaml.Node, index: int, task: TaskSpec, labs_dir: Path | None
) -> ExamTask:
    line, _ = _line_of(node, ["tasks", index, "lab"])
    where = {"file": path, "line": line, "key": f"tasks.{index}.lab"}
    try:
        lab_path = resolve_lab(task.lab, labs_dir)
        lab = load_lab(lab_path)
    except ConfigError as exc:
        raise ConfigError(f"task's lab: {exc}", **where) from None  # type: ignore[arg-type]
    why = _unsupported(lab)
    if why is not None:
        raise ConfigError(
            f"lab {lab.id} cannot be an exam task: {why}",
            **where,  # type: ignore[arg-type]
            expected="a lab whose gateway the candidate runs against the exam's plant and broker",
        )
    return ExamTask(task, lab_path, lab)


def load_exam(path: str | Path, labs_dir: Path | None = None) -> Exam:
    """Load and validate an exam.yaml; its labs are resolved through grader.catalog."""
    path = Path(path)
    data, node = _parse(path)
    try:
        spec = ExamSpec.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, node, exc) from None
    tasks = tuple(
        _resolve_task(path, node, index, task, labs_dir) for index, task in enumerate(spec.tasks)
    )
    seen: set[str] = set()
    for index, task in enumerate(tasks):
        if task.id in seen:
            line, _ = _line_of(node, ["tasks", index, "lab"])
            raise ConfigError(
                "the same lab twice",
                file=path,
                line=line,
                key=f"tasks.{index}.lab",
                value=task.id,
                expected="each lab once per exam",
            )
        seen.add(task.id)
    return Exam(spec, tasks, path)
