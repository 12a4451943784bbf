"""grade_one: resolve the lab, the student's command and the settings, then runner.grade."""

from __future__ import annotations

from pathlib import Path

from grader.environment import StudentRun
from grader.results import Result
from grader.runner import GATEWAY_WAIT_S, GatewaySpec, grade
from grader.signing import SigningKey, load_signing_key
from grader.spec import LabSpec, load_lab
from grader.submission import gateway_command, load_broker_policy
from iiotlab.errors import ConfigError
from iiotlab.settings import Settings
from iiotlab.variants import check_name


def resolve_gateway(
    lab: LabSpec,
    *,
    gateway_cmd: str | None,
    submission: Path | None,
    gateway_running: bool,
    wait_s: float = GATEWAY_WAIT_S,
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
        return GatewaySpec(None, cwd, lab.memory_mb, wait_s=wait_s)
    command = gateway_cmd if gateway_cmd is not None else gateway_command(cwd)
    return GatewaySpec(command, cwd, lab.memory_mb)


def student_run(
    lab: LabSpec, student: str, out: Path, submission: Path | None, settings: Settings
) -> StudentRun:
    policy = None
    if lab.broker.from_submission is not None:
        if submission is None:
            raise ConfigError(
                f"lab {lab.id} grades the student's {lab.broker.from_submission}",
                key="--submission",
                expected="the submission folder holding it",
            )
        policy = load_broker_policy(submission / lab.broker.from_submission)
    return StudentRun(
        lab, check_name("student", student), settings.course_secret, out.resolve(), policy
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
) -> Result:
    settings = settings or Settings.from_env()
    lab = load_lab(lab_path)
    gateway = resolve_gateway(
        lab,
        gateway_cmd=gateway_cmd,
        submission=submission,
        gateway_running=gateway_running,
        wait_s=gateway_wait_s,
    )
    run = student_run(lab, student, out, submission, settings)
    return await grade(run, gateway, key or load_signing_key(settings))
