"""each_device: a single-device check kind run on every device of a multi-plant lab.

The inner check sees the observation as a single-plant lab of that device would have
(`Observation.for_device`): its topics, truth, writes, sessions and the scenario steps
aimed at it. Points are the mean of the devices' shares, so one device of five failing
half its check costs a tenth of the points.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from grader.checks.registry import CheckContext, CheckKind, CheckOutcome, CheckParams, check


class EachDeviceParams(CheckParams):
    check: str = Field(description="the check kind to run per device (one without a probe)")
    params: dict[str, Any] = Field(default_factory=dict, description="that kind's params")
    devices: list[str] | None = Field(default=None, description="default: every device")

    @model_validator(mode="after")
    def _inner_kind(self) -> EachDeviceParams:
        inner_params(self)
        return self


def inner_kind(params: EachDeviceParams) -> CheckKind:
    from grader.checks.registry import default_registry

    kind = default_registry().get(params.check)
    if kind is None or kind.name == "each_device":
        names = ", ".join(n for n in default_registry().names() if n != "each_device")
        raise ValueError(f"check {params.check!r} is not a check kind: use one of {names}")
    if kind.probe is not None:
        raise ValueError(
            f"check {params.check!r} acts during the run (it has a probe): each_device runs "
            "only kinds that judge what was observed"
        )
    return kind


def inner_params(params: EachDeviceParams) -> BaseModel:
    kind = inner_kind(params)
    try:
        return kind.params.model_validate(params.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"params of {params.check}: {where}: {first['msg']}") from None


@check("each_device", params=EachDeviceParams)
def each_device(ctx: CheckContext[EachDeviceParams]) -> CheckOutcome:
    """Another check kind, run on each device of a multi-plant lab; the mean of their shares."""
    obs, params = ctx.observation, ctx.params
    kind, inner = inner_kind(params), inner_params(params)
    if not obs.line:  # a single-plant lab: the plant is the one device
        return kind.evaluate(CheckContext(ctx.lab, ctx.spec, inner, ctx.datasheet, obs))
    known = {entry.device: entry for entry in obs.line}
    wanted = params.devices if params.devices is not None else list(known)
    unknown = [d for d in wanted if d not in known]
    if unknown or not wanted:
        return CheckOutcome(
            0.0,
            ctx.spec.points,
            False,
            f"lab error: devices {unknown or wanted} are not in the line ({', '.join(known)})",
            {"expected": "devices of plants:", "saw": wanted, "where": "lab.yaml"},
        )
    shares, failed, saw = [], [], {}
    for device in wanted:
        entry = known[device]
        sub: CheckContext[Any] = CheckContext(
            ctx.lab, ctx.spec, inner, entry.datasheet, obs.for_device(device)
        )
        outcome = kind.evaluate(sub)
        shares.append(outcome.points / outcome.max_points if outcome.max_points else 0.0)
        if not outcome.passed:
            failed.append(f"{device}: {outcome.message}")
        saw[device] = {"points": outcome.points, "message": outcome.message, **outcome.evidence}
    points = round(ctx.spec.points * sum(shares) / len(shares), 2)
    message = "all devices passed" if not failed else "failed: " + " | ".join(failed)
    evidence = {
        "expected": f"{params.check} passes on each of {', '.join(wanted)}",
        "saw": saw,
        "where": f"iiot/{obs.tenant}/<device>/... per device",
    }
    return CheckOutcome(points, ctx.spec.points, not failed, message, evidence)
