"""Grade an attempt against the candidate's RUNNING gateway on its live environment.

As practice mode (`iiotlab grade --gateway-running`): the grader plays the lab's scenario
and observes, but on the environment the candidate has developed against since the start,
which the exam server owns (runner.LabRun on a caller's LabEnvironment). Kill and restart
steps are skipped and recorded. What the environment saw before the attempt (development,
earlier attempts) is left out of the observation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path

from grader.environment import LabEnvironment, NotGradableError
from grader.exam.live import LiveLab
from grader.gateway_process import SweepError
from grader.observation import DeviceObservation, Observation, ObservedMessage, TruthSeries
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


RETAINED_WAIT_S = 1.5  # retained messages arrive right after SUBACK


async def _retained_now(env: LabEnvironment) -> list[ObservedMessage]:
    """The retained messages on the tenant's topics that a subscriber arriving now gets."""
    from iiotlab.mqtt import MqttClient

    url, ca = env.admin_url()
    client = MqttClient(
        url, client_id=f"grader-retained-{secrets.token_hex(3)}", ca_file=ca, auto_reconnect=False
    )
    found: list[ObservedMessage] = []
    try:
        await client.connect(timeout=5)
        await client.subscribe(f"iiot/{env.tenant}/#")
        async with asyncio.timeout(RETAINED_WAIT_S):
            async for m in client.messages():
                if m.retain:
                    found.append(ObservedMessage(m.topic, m.payload, m.received_ms, True, m.qos))
    except TimeoutError:
        pass
    finally:
        await client.disconnect()
    return found


async def _gateway_alive(live: LiveLab, wait_s: float) -> None:
    """Practice mode's wait, on a running environment: a message of the gateway's sent
    after the attempt started. Then what the gateway retained (status `online`, `meta`):
    it sent them once, when it connected, long before the attempt, and a subscriber
    arriving now gets them."""
    env = live.env
    env.messages.clear()
    deadline = time.monotonic() + wait_s
    while not env.messages:
        if time.monotonic() > deadline:
            raise NotGradableError(
                f"no message arrived from your gateway within {wait_s:g} s: start it with "
                "this task's gateway.env and press grade again"
            )
        await asyncio.sleep(0.2)
    env.messages.extend(await _retained_now(env))
    env.messages.sort(key=lambda m: m.received_ms)


async def grade_attempt(live: LiveLab, out_dir: Path, key: SigningKey, wait_s: float) -> Result:
    """Play the lab on `live` now; a signed result written to `out_dir`."""
    run = replace(live.run, out_dir=Path(os.path.abspath(out_dir)))  # noqa: ASYNC240
    async with live.lock:
        started = now_ms()
        env = live.env
        lab_run = LabRun(env, GatewaySpec(None, out_dir, wait_s=wait_s))
        try:
            await _gateway_alive(live, wait_s)
            observation = since(await lab_run.play(), started)
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
    return publish(run, result, key)
