"""`iiotlab grade-manual`: the instructor's points for a manual check, re-signed.

The result must carry a valid signature of this grader's key first: only a result the
grader produced is amended. The check's evidence then records who scored it, when and
why; score and pending_points are recomputed and the result is signed again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from grader.results import CheckResult, Result, read_result_data, write_result
from grader.scoring import pending_points
from grader.signing import SigningKey, verify
from iiotlab.errors import ConfigError


def score_manual(
    path: Path, check_id: str, points: float, by: str, note: str, key: SigningKey
) -> Result:
    """Enter `points` for manual check `check_id` of the result at `path`; write it back."""
    data = read_result_data(path)
    verify(data, key.private.public_key())  # SignatureError: refuse to amend a forged result
    result = Result.model_validate(data)
    check = _manual_check(result, check_id, path)
    if not 0 <= points <= check.max_points:
        raise ConfigError(
            "points out of range",
            key="--points",
            value=points,
            expected=f"0 to {check.max_points:g} (the check's max points)",
        )
    if not by.strip():
        raise ConfigError("who scored it is empty", key="--by", expected="the instructor's name")
    evidence = {
        **check.evidence,
        "pending": False,
        "by": by,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": note,
    }
    scored = check.model_copy(
        update={
            "points": round(points, 2),
            "passed": points >= check.max_points,
            "message": f"scored by {by}: {points:g} / {check.max_points:g}"
            + (f" ({note})" if note else ""),
            "evidence": evidence,
        }
    )
    checks = [scored if c.id == check_id else c for c in result.checks]
    amended = result.model_copy(
        update={
            "checks": checks,
            "score": round(sum(c.points for c in checks), 2),
            "pending_points": pending_points(checks),
            "signature": None,
        }
    )
    signed = amended.model_copy(update={"signature": key.sign(amended.unsigned())})
    write_result(signed, path)
    return signed


def _manual_check(result: Result, check_id: str, path: Path) -> CheckResult:
    manual = [c for c in result.checks if c.kind == "manual"]
    for check in manual:
        if check.id == check_id:
            return check
    raise ConfigError(
        "no manual check with this id in the result",
        file=path,
        key="--check",
        value=check_id,
        expected="one of " + (", ".join(c.id for c in manual) or "(the lab has no manual check)"),
    )
