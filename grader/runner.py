"""run -> observe: play one student's lab against their gateway and record what happened.

`grade()` is the whole pipeline: prepare (variant, environment), run (gateway process,
scenario, probes), observe (Observation), check + score (scoring.py), report (result.json
signed, report.html, junit.xml). A failure of the grader's own machinery gives a result
with gradable=false and the reason, never a zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader import artifacts, line
from grader.environment import LabEnvironment, NotGradableError, StudentRun
from grader.gateway_process import GatewayProcess, SweepError
from grader.observation import (
    ActionRecord,
    Observation,
    OpcuaSession,
    ProbeRecord,
    TruthEvent,
    TruthSeries,
)
from grader.probes.context import ProbeContext
from grader.report import write_reports
from grader.results import Result, write_result
from grader.sandbox import PlainSandbox, RunLimits, Sandbox, Workspace
from grader.scoring import (
    CheckCrashError,
    build_result,
    not_gradable,
    run_checks,
    submission_error,
)
from grader.signing import SigningKey
from grader.spec import ScenarioStep
from grader.submission import SubmissionError
from iiotlab.datasheet import Datasheet

logger = logging.getLogger(__name__)
FINAL_WAIT_S = 1.0
GATEWAY_WAIT_S = 120.0  # practice mode: how long to wait for the student's gateway


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class GatewaySpec:
    """How the gateway under test runs: a command the grader starts, or the student's own.

    `command` None is practice mode: the grader writes gateway.env and waits up to
    `wait_s` for the first message of the student's gateway. Otherwise the command runs in
    `sandbox`, in a private copy of `submission` (or in `cwd` when there is none).
    """

    command: str | None
    cwd: Path
    submission: Path | None = None
    limits: RunLimits = field(default_factory=RunLimits)
    sandbox: Sandbox = field(default_factory=PlainSandbox)
    wait_s: float = GATEWAY_WAIT_S


def base_environment(workspace: Workspace) -> dict[str, str]:
    """What the submission gets besides the contract variables (DESIGN.md), and no more."""
    return {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": str(workspace.home),
        "TMPDIR": str(workspace.tmp),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        **({artifacts.OUTPUT_VARIABLE: str(workspace.output)} if workspace.output else {}),
    }


class LabRun:
    """One run of a lab: the environment, the gateway process, scenario and probes."""

    def __init__(self, env: LabEnvironment, gateway: GatewaySpec) -> None:
        self.env, self.gateway = env, gateway
        self.lab = env.lab
        self.actions: list[ActionRecord] = []
        self.probe_records: list[ProbeRecord] = []
        self.process: GatewayProcess | None = None
        self.workspace: Workspace | None = None
        self.started_ms = 0
        self.started_monotonic = 0.0

    def _write_env_file(self) -> Path:
        """gateway.env (shell-quoted, `set -a; . gateway.env`), written whole or not at all."""
        env_file = self.env.run.out_dir / "gateway.env"
        partial = env_file.with_name(".gateway.env.tmp")
        variables = {**self.env.gateway_env(), artifacts.OUTPUT_VARIABLE: str(self._output_dir())}
        self._output_dir().mkdir(exist_ok=True)
        lines = (f"{k}={shlex.quote(v)}\n" for k, v in variables.items())
        partial.write_text("".join(lines), encoding="utf-8")
        os.replace(partial, env_file)
        return env_file

    async def _start_gateway(self) -> None:
        if self.gateway.command is None:
            env_file = self._write_env_file()
            logger.info(
                "start your gateway with the variables in %s (e.g. set -a; . %s; set +a); "
                "waiting up to %g s for its first message",
                env_file,
                shlex.quote(str(env_file)),
                self.gateway.wait_s,
            )
            return
        access = self.env.broker_info
        self.workspace = workspace = Workspace.create(
            self.gateway.submission,
            self.env.datasheet_path,
            Path(access.ca_file) if access.ca_file else None,
        )
        if self.env.line:
            workspace = replace(
                workspace, line=line.write_line(self.env.line, workspace.root / "line").parent
            )
            self.workspace = workspace
        cwd = workspace.cwd if self.gateway.submission is not None else self.gateway.cwd
        env = self.env.gateway_env(
            workspace.datasheet,
            workspace.state,
            workspace.ca_file,
            workspace.line / line.MANIFEST if workspace.line is not None else None,
        )
        self.process = GatewayProcess(
            self.gateway.command,
            sandbox=self.gateway.sandbox,
            workspace=workspace,
            cwd=cwd,
            env={**base_environment(workspace), **env},
            log_file=self.env.run.out_dir / "gateway.log",
            limits=self.gateway.limits,
            cpu_s=int(self.lab.duration_s * 3 + 60),
        )
        await self.process.start()

    async def _play(self, index: int, step: ScenarioStep) -> None:
        await asyncio.sleep(max(0.0, self.started_monotonic + step.at - time.monotonic()))
        started = now_ms()
        detail: dict[str, Any] = {"at_s": step.at, "duration_s": step.duration}
        if self.env.line and step.action in ("plc_outage", "plant_event"):
            detail["device"] = step.device or self.env.line[0].device
        if step.action in ("broker_outage", "plc_outage"):
            proxy = (
                self.env.mqtt_proxy
                if step.action == "broker_outage"
                else self.env.device_link(step.device)
            )
            if proxy is None:
                raise NotGradableError(f"{step.action}: the lab has no such link to cut")
            proxy.cut()
            await asyncio.sleep(step.duration)
            proxy.restore()
        elif step.action in ("gateway_kill", "gateway_restart"):
            if self.process is None:
                detail["skipped"] = "the gateway is not run by the grader (--gateway-running)"
                self.actions.append(
                    ActionRecord(step.action + "_skipped", started, now_ms(), detail)
                )
                return
            await (self.process.kill() if step.action == "gateway_kill" else self.process.stop())
            await asyncio.sleep(step.duration)
            await self.process.start()
        elif step.action == "plant_event":
            await self.env.device_sim(step.device).inject(self.env.run.plan.plant_events[index])
            detail.update(step.event)
        self.actions.append(ActionRecord(step.action, started, now_ms(), detail))

    def _probe_tasks(self) -> list[asyncio.Task[None]]:
        sheet = self.env.datasheet
        assert sheet is not None
        tasks: list[asyncio.Task[None]] = []
        for check in self.env.run.plan.checks:
            if check.kind.probe is None:
                continue
            context: ProbeContext[Any] = ProbeContext(
                check.spec.id,
                check.params,
                self.lab,
                sheet,
                self.env.tenant,
                self.env.device,
                self.env,
                self.started_monotonic,
                self.probe_records,
            )
            name = f"probe of check {check.spec.id}"
            tasks.append(asyncio.create_task(_guarded(name, check.kind.probe(context)), name=name))
        return tasks

    def _step_tasks(self) -> list[asyncio.Task[None]]:
        tasks = []
        for index, step in enumerate(self.lab.scenario):
            name = f"scenario step {step.action} at {step.at:g} s"
            tasks.append(asyncio.create_task(_guarded(name, self._play(index, step)), name=name))
        return tasks

    def _devices_reached(self) -> bool:
        """Whether the submission has opened a Modbus link or an OPC UA session."""
        devices = [(d.modbus_proxy, d.sim) for d in self.env.line] or [
            (self.env.modbus_proxy, self.env.sim)
        ]
        return any(
            (proxy is not None and proxy.connections > 0) or bool(sim.opcua_sessions)
            for proxy, sim in devices
        )

    async def _wait_for_external_gateway(self) -> None:
        """Until the student's gateway publishes (for a proxy lab, until its port answers;
        for a lab judged on the platform alone, until it reaches a device)."""
        limit_s = self.gateway.wait_s
        deadline = time.monotonic() + limit_s
        proxy_port = self.env.student_proxy_port
        while time.monotonic() < deadline:
            if proxy_port is not None:
                if await _accepts(proxy_port):
                    return
            elif self.lab.publishes:
                if self.env.messages:
                    return
            elif self._devices_reached():
                return
            await asyncio.sleep(0.2)
        if proxy_port is not None:
            what = f"your proxy did not accept a connection on port {proxy_port}"
        elif self.lab.publishes:
            what = "no message arrived from your gateway"
        else:
            what = "your script did not connect to any device (Modbus or OPC UA)"
        raise NotGradableError(
            f"practice mode: {what} within {limit_s:g} s "
            f"(start it with the variables in {self.env.run.out_dir / 'gateway.env'})"
        )

    async def play(self) -> Observation:
        """Start the gateway, play the scenario and probes; every process is gone after."""
        try:
            return await self._play_scenario()
        finally:
            if self.process is not None:
                await self.process.stop()
            if self.workspace is not None:
                self.workspace.remove()

    def sandbox_report(self) -> dict[str, Any]:
        """result.json `sandbox`: which sandbox held the gateway, its limits, what it hit."""
        if self.process is None:
            return {"kind": "external", "note": "practice mode: the student ran the gateway"}
        return {
            "kind": self.gateway.sandbox.name,
            "limits": self.gateway.limits.model_dump(),
            "peak": self.process.peak,
            "events": [event.as_json() for event in self.process.limit_events],
            "exits": [
                {"at_ms": e.ts_ms, "code": e.returncode, "killed_by_grader": e.killed_by_grader}
                for e in self.process.exits
            ],
        }

    async def _play_scenario(self) -> Observation:
        await self._start_gateway()
        if self.process is None:
            await self._wait_for_external_gateway()
        self.started_ms, self.started_monotonic = now_ms(), time.monotonic()
        tasks = self._step_tasks() + self._probe_tasks()
        limit_s = self.lab.duration_s + 60
        done = asyncio.gather(*tasks)
        try:
            async with asyncio.timeout(limit_s):
                # a step or probe that fails ends the run now, not after duration_s
                await asyncio.wait([done], timeout=self.lab.duration_s)
                if done.done() and not done.cancelled() and done.exception() is not None:
                    done.result()
                end = self.started_monotonic + self.lab.duration_s
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                await done
        except TimeoutError:
            late = ", ".join(t.get_name() for t in tasks if not t.done()) or "?"
            raise NotGradableError(f"the lab did not finish within {limit_s:g} s: {late}") from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if done.done() and not done.cancelled():
                done.exception()  # retrieved: asyncio would log it as never retrieved
            finished = now_ms()
            if self.process is not None:
                await self.process.stop()
        await asyncio.sleep(FINAL_WAIT_S)
        return self._observation(finished)

    def _wanted_files(self) -> set[str]:
        """The output files the lab's checks read (their `file` parameter)."""
        return {
            str(check.params.get("file"))
            for check in self.lab.checks
            if isinstance(check.params.get("file"), str)
        }

    def _output_dir(self) -> Path:
        """IIOTLAB_OUTPUT_DIR: in the workspace, or in the out folder in practice mode."""
        if self.workspace is not None and self.workspace.output is not None:
            return self.workspace.output
        return self.env.run.out_dir / "output"

    def _observation(self, finished_ms: int) -> Observation:
        sim, device = self.env.sim, self.env.device
        sim_device = next(iter(sim.datasheets.values())).device or device
        samples = tuple(sorted(sim.truth.samples(sim_device), key=lambda s: s[0]))
        observation = replace(
            self._single_observation(finished_ms, samples),
            artifacts=artifacts.collect(
                self._output_dir(), self.env.run.out_dir / "output", self._wanted_files()
            ),
        )
        if not self.env.line:
            return observation
        devices = line.observations(self.env.line)
        return replace(
            observation,
            truth=devices[0].truth,
            truth_events=tuple(line.truth_events(self.env.line)),
            writes=tuple(sorted((w for d in devices for w in d.writes), key=lambda w: w.ts_ms)),
            opcua_sessions=tuple(s for d in devices for s in d.opcua_sessions),
            line=devices,
        )

    def _single_observation(
        self, finished_ms: int, samples: tuple[tuple[int, Mapping[str, Any]], ...]
    ) -> Observation:
        sim, device = self.env.sim, self.env.device
        return Observation(
            tenant=self.env.tenant,
            device=device,
            started_ms=self.started_ms,
            finished_ms=finished_ms,
            messages=tuple(self.env.messages),
            truth=TruthSeries(samples),
            truth_events=tuple(
                TruthEvent(e.ts_ms, e.kind, e.device or "", dict(e.detail))
                for e in sim.truth.events()
            ),
            writes=tuple(sim.write_log),
            opcua_sessions=tuple(OpcuaSession.of(s) for s in sim.opcua_sessions),
            actions=tuple(sorted(self.actions, key=lambda a: a.started_ms)),
            probes=tuple(self.probe_records),
            gateway_exits=tuple(self.process.exits if self.process else ()),
            startup_s=self.lab.startup_s,
        )


async def _guarded(name: str, work: Coroutine[Any, Any, None]) -> None:
    """A scenario step or probe that fails is the grader's fault: not gradable, with why."""
    try:
        await work
    except NotGradableError:
        raise
    except Exception as exc:  # CancelledError is no Exception: it passes
        logger.exception("%s failed", name)
        raise NotGradableError(f"{name} failed: {exc!r}") from exc


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _save_messages(observation: Observation, out_dir: Path) -> None:
    with (out_dir / "messages.jsonl").open("w", encoding="utf-8") as handle:
        for m in observation.messages:
            handle.write(
                json.dumps(
                    {
                        "topic": m.topic,
                        "received_ms": m.received_ms,
                        "retain": m.retain,
                        "payload": m.payload.decode("utf-8", "replace"),
                    }
                )
                + "\n"
            )


@dataclass(frozen=True)
class RunOutcome:
    observation: Observation
    datasheet: Datasheet
    sandbox: dict[str, Any]


async def observe(run: StudentRun, gateway: GatewaySpec) -> RunOutcome:
    """prepare + run + observe: what happened, the datasheet used, the sandbox's report."""
    async with LabEnvironment(run) as env:
        lab_run = LabRun(env, gateway)
        observation = await lab_run.play()
        assert env.datasheet is not None
        return RunOutcome(observation, env.datasheet, lab_run.sandbox_report())


async def grade(run: StudentRun, gateway: GatewaySpec, key: SigningKey) -> Result:
    """The whole pipeline for one student; writes result.json, report.html, junit.xml."""
    started = now_ms()
    run.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = await observe(run, gateway)
        _save_messages(outcome.observation, run.out_dir)
        checks = run_checks(run.plan, outcome.datasheet, outcome.observation)
        result = build_result(run.lab, run.student, run.seed, started, now_ms(), checks)
        result = result.model_copy(update={"sandbox": outcome.sandbox})
    except SubmissionError as exc:  # the student's files, refused while starting (sec-03)
        result = submission_error(run.lab, run.student, run.seed, started, now_ms(), exc)
    except (NotGradableError, CheckCrashError, SweepError, OSError, ImportError) as exc:
        logger.warning("%s/%s not gradable: %s", run.lab.id, run.student, exc)
        reason = str(exc) or repr(exc)
        result = not_gradable(run.lab, run.student, run.seed, started, now_ms(), reason)
    return publish(run, result, key)


def publish(run: StudentRun, result: Result, key: SigningKey) -> Result:
    """report: sign the result, write result.json, report.html and junit.xml.

    Called only when every process of the submission is gone."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    signed = result.model_copy(update={"signature": key.sign(result.unsigned())})
    write_result(signed, run.out_dir / "result.json")
    write_reports(signed, run.out_dir, run.lab.title.model_dump())
    return signed
