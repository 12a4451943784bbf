"""grade_one: resolve the lab, the student's command and the settings, then runner.grade.

A mistake of the instructor's (a wrong lab file, no way to run the gateway) is an error
raised here. A mistake in the student's submission (no command, a bad broker.yaml, a
folder too large) is a signed, gradable result of 0 that says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from grader.checks.registry import CheckRegistry, default_registry
from grader.environment import StudentRun
from grader.mosquitto_submission import load_mosquitto_submission
from grader.results import Result
from grader.runner import GATEWAY_WAIT_S, GatewaySpec, grade, now_ms, publish
from grader.sandbox import SandboxChoice, SandboxUnavailableError, choose_sandbox
from grader.scoring import not_gradable, submission_error
from grader.signing import SigningKey, load_signing_key
from grader.spec import LabPlan, LabSpec, prepare_lab
from grader.submission import (
    SubmissionError,
    check_size,
    gateway_command,
    load_broker_policy,
)
from iiotlab.errors import ConfigError
from iiotlab.settings import Settings
from iiotlab.variants import check_name

SANDBOX_CHOICES: tuple[SandboxChoice, ...] = ("auto", "bubblewrap", "none")


def sandbox_choice(value: str) -> SandboxChoice:
    for choice in SANDBOX_CHOICES:
        if value == choice:
            return choice
    raise ConfigError(
        "unknown sandbox",
        key="IIOTLAB_SANDBOX / --sandbox",
        value=value,
        expected=" or ".join(SANDBOX_CHOICES),
    )


def hidden_paths(settings: Settings, out: Path, extra: Sequence[Path]) -> tuple[Path, ...]:
    """What the sandboxed submission must not see: keys, out folders, other students."""
    paths = [out, settings.data_dir, *settings.sandbox_hide, *extra]
    if settings.signing_key_file is not None:
        paths.append(settings.signing_key_file)
    return tuple(p.resolve() for p in paths)


def resolve_gateway(
    lab: LabSpec,
    *,
    gateway_cmd: str | None,
    submission: Path | None,
    gateway_running: bool,
    wait_s: float = GATEWAY_WAIT_S,
    sandbox: SandboxChoice = "auto",
    hidden: Sequence[Path] = (),
) -> GatewaySpec:
    chosen = sum((gateway_cmd is not None, gateway_running))
    if chosen > 1 or (chosen == 0 and submission is None):
        raise ConfigError(
            "say how the gateway runs",
            key="--gateway-cmd / --gateway-running / --submission",
            expected="exactly one of --gateway-cmd or --gateway-running, or a --submission "
            "folder with gateway.cmd or run.sh",
        )
    cwd = (submission or Path.cwd()).resolve()
    if gateway_running:
        return GatewaySpec(None, cwd, wait_s=wait_s)
    if submission is not None:
        check_size(cwd)
    command = gateway_cmd if gateway_cmd is not None else gateway_command(cwd)
    return GatewaySpec(
        command,
        cwd,
        submission=cwd if submission is not None else None,
        limits=lab.limits,
        sandbox=choose_sandbox(sandbox, hidden),
    )


def student_run(
    plan: LabPlan, student: str, out: Path, submission: Path | None, settings: Settings
) -> StudentRun:
    lab = plan.lab
    policy = None
    if lab.broker.from_submission is not None:
        if submission is None:
            raise ConfigError(
                f"lab {lab.id} grades the student's {lab.broker.from_submission}",
                key="--submission",
                expected="the submission folder holding it",
            )
        policy = load_broker_policy(submission / lab.broker.from_submission)
    mosquitto = None
    if lab.broker.submission_conf:
        if submission is None:
            raise ConfigError(
                f"lab {lab.id} runs the student's own mosquitto.conf",
                key="--submission",
                expected="the submission folder holding it",
            )
        mosquitto = load_mosquitto_submission(submission, check_name("student", student))
    return StudentRun(
        plan,
        check_name("student", student),
        settings.course_secret,
        out.resolve(),
        policy,
        mosquitto,
    )


async def grade_one(
    lab_path: Path,
    student: str,
    *,
    out: Path,
    gateway_cmd: str | None = None,
    submission: Path | None = None,
    gateway_running: bool = False,
    gateway_wait_s: float = GATEWAY_WAIT_S,
    settings: Settings | None = None,
    key: SigningKey | None = None,
    sandbox: str | None = None,
    hide: Sequence[Path] = (),
    registry: CheckRegistry | None = None,
) -> Result:
    """prepare (lab, submission, sandbox) then runner.grade; see the module docstring."""
    settings = settings or Settings.from_env()
    key = key or load_signing_key(settings)
    choice = sandbox_choice(sandbox or settings.sandbox)
    plan = prepare_lab(lab_path, registry or default_registry())
    lab = plan.lab
    started = now_ms()
    out = Path(os.path.abspath(out))  # noqa: ASYNC240 (no I/O: a path joined to the cwd)
    bare = StudentRun(plan, check_name("student", student), settings.course_secret, out)
    try:
        run = student_run(plan, student, out, submission, settings)
        gateway = resolve_gateway(
            lab,
            gateway_cmd=gateway_cmd,
            submission=submission,
            gateway_running=gateway_running,
            wait_s=gateway_wait_s,
            sandbox=choice,
            hidden=hidden_paths(settings, out, hide),
        )
    except SubmissionError as exc:
        result = submission_error(lab, bare.student, bare.seed, started, now_ms(), exc)
        return publish(bare, result, key)
    except SandboxUnavailableError as exc:
        result = not_gradable(lab, bare.student, bare.seed, started, now_ms(), str(exc))
        return publish(bare, result, key)
    return await grade(run, gateway, key)
