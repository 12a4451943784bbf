"""result.json: the graded outcome of one student's run, per DESIGN.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from iiotlab.errors import ConfigError


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: str
    points: float
    max_points: float
    passed: bool
    message: str
    hint: dict[str, str]
    evidence: dict[str, Any] = Field(default_factory=dict)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lab: str
    student: str
    seed: str  # hex: JSON readers lose precision on 64-bit integers
    started: str  # ISO 8601 UTC
    finished: str
    gradable: bool
    reason: str | None = None  # why not gradable
    submission_error: dict[str, str] | None = None  # en, zh: why the submission did not run
    score: float
    max_score: float
    # max points of manual checks the instructor has not scored yet (iiotlab grade-manual):
    # a run whose automatic checks are all full has score + pending_points == max_score
    pending_points: float = 0.0
    checks: list[CheckResult] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    sandbox: dict[str, Any] | None = None  # which sandbox held the gateway, limits, events
    signature: str | None = None

    def unsigned(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data.pop("signature", None)
        return data


def canonical_json(data: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_result(result: Result, path: Path) -> None:
    path.write_text(
        json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def read_result_data(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("result file not found", file=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", file=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise ConfigError("a result must be a JSON object", file=path)
    return data
