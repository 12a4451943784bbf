"""Grade an attempt against the candidate's RUNNING gateway on its live environment.

As practice mode (`iiotlab grade --gateway-running`): the candidate (re)starts the gateway
after pressing grade, then the grader plays the lab's scenario and observes, on the
environment the candidate has developed against since the exam began, which the exam
server owns (runner.LabRun on a caller's LabEnvironment). Kill and restart steps are
skipped and recorded. What the environment saw before the gateway's (re)start
(development, earlier attempts) is left out of the observation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from grader.environment import NotGradableError
from grader.exam.live import LiveLab
from grader.gateway_process import SweepError
from grader.observation import DeviceObservation, Observation, TruthSeries
from grader.results import Result
from grader.runner import GatewaySpec, LabRun, now_ms, publish
from grader.scoring import CheckCrashError, build_result, not_gradable, run_checks
from grader.signing import SigningKey

logger = logging.getLogger(__name__)
TRUTH_LEAD_MS = 5_000  # truth just before the attempt: a value read then is still checked


def _truth_since(truth: TruthSeries, since_ms: int) -> TruthSeries:
    return TruthSeries(tuple(s for s in truth.samples if s[0] >= since_ms - TRUTH_LEAD_MS))


def _device_since(device: DeviceObservation, since_ms: int) -> DeviceObservation:
    return replace(
        device,
        truth=_truth_since(device.truth, since_ms),
        writes=tuple(w for w in device.writes if w.ts_ms >= since_ms),
        opcua_sessions=tuple(
            s for s in device.opcua_sessions if s.closed_ms is None or s.closed_ms >= since_ms
        ),
    )


def since(observation: Observation, since_ms: int) -> Observation:
    """The observation without what happened before `since_ms` (the attempt's start)."""
    return replace(
        observation,
        messages=tuple(m for m in observation.messages if m.received_ms >= since_ms),
        truth=_truth_since(observation.truth, since_ms),
        truth_events=tuple(e for e in observation.truth_events if e.ts_ms >= since_ms),
        writes=tuple(w for w in observation.writes if w.ts_ms >= since_ms),
        opcua_sessions=tuple(
            s for s in observation.opcua_sessions if s.closed_ms is None or s.closed_ms >= since_ms
        ),
        line=tuple(_device_since(d, since_ms) for d in observation.line),
    )


async def _gateway_started(live: LiveLab, wait_s: float) -> int:
    """Practice mode's wait, on the live environment: the candidate (re)starts the gateway
    after pressing grade; the attempt starts when it connects to the broker (through the
    exam's relay) and has sent a message. A gateway that has long been running has sent
    its unchanged values, its status and meta before: a lab judges a run from the start.
    A lab judged on the platform's state alone starts at the submission's first connection
    to any of the task's relays (device, platform or broker). Returns when it connected
    (ms)."""
    env, publishes = live.env, live.plan.lab.publishes
    relays = [live.relays["mqtt"]] if publishes else list(live.relays.values())
    before = [relay.accepts for relay in relays]
    deadline = time.monotonic() + wait_s
    live.phase = "waiting_gateway"

    def connected() -> list[int]:
        return [r.last_accept_ms for r, n in zip(relays, before, strict=True) if r.accepts > n]

    while not connected() or (
        publishes and not [m for m in env.messages if m.received_ms >= relays[0].last_accept_ms]
    ):
        if time.monotonic() > deadline:
            if not publishes:
                what = "connect to any of this task's endpoints"
            elif not connected():
                what = "connect to the broker"
            else:
                what = "send a message"
            raise NotGradableError(
                f"your gateway did not {what} within {wait_s:g} s of pressing grade: press "
                "grade, then (re)start your gateway with this task's gateway.env"
            )
        await asyncio.sleep(0.1)
    since_ms = min(connected())
    env.messages[:] = [m for m in env.messages if m.received_ms >= since_ms]
    live.phase = "grading"
    return since_ms


async def grade_attempt(live: LiveLab, out_dir: Path, key: SigningKey, wait_s: float) -> Result:
    """Play the lab on `live` now; a signed result written to `out_dir`."""
    run = replace(live.run, out_dir=Path(os.path.abspath(out_dir)))  # noqa: ASYNC240
    async with live.lock:
        started = now_ms()
        env = live.env
        lab_run = LabRun(env, GatewaySpec(None, out_dir, wait_s=wait_s))
        try:
            connected_ms = await _gateway_started(live, wait_s)
            observation = since(await lab_run.play(), connected_ms)
            assert env.datasheet is not None
            checks = run_checks(live.plan, env.datasheet, observation)
            result = build_result(run.lab, run.student, run.seed, started, now_ms(), checks)
            sandbox = {
                "kind": "external",
                "note": "exam: the candidate ran the gateway on their workstation",
            }
            result = result.model_copy(update={"sandbox": sandbox})
        except (NotGradableError, CheckCrashError, SweepError, OSError) as exc:
            logger.warning("%s/%s not gradable: %s", run.lab.id, run.student, exc)
            reason = str(exc) or repr(exc)
            result = not_gradable(run.lab, run.student, run.seed, started, now_ms(), reason)
        finally:
            live.phase = "idle"
    return publish(run, result, key)
