"""Identifier resolution (标识解析) for a whole line: two-level prefixes, one identifier per
device, its metadata equal to the device's own identity, and resolution.

The probe reads the student's platform (prefixes, identifiers, one resolve per identifier
bound to a device of the line) with the grader's instructor token; evaluation compares the
answers with each device's datasheet identity (what it reports on Modbus 43 / MEI 14) and
its serial number as the simulator served it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import Observation, ProbeRecord

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

IDENTITY_FIELDS = ("vendor_name", "product_code", "revision")
Part = Literal["prefixes", "bound", "metadata", "resolves"]
ALL_PARTS: tuple[Part, ...] = ("prefixes", "bound", "metadata", "resolves")


class LineIdentifierParams(CheckParams):
    secondary_prefix: str = Field(min_length=1, description="the secondary node's prefix")
    enterprise_prefix: str = Field(min_length=1, description="allocated under the secondary")
    fields: list[str] = Field(
        default_factory=lambda: [*IDENTITY_FIELDS, "serial_number"],
        description="metadata keys that must equal the device's identity",
    )
    at: float | None = Field(default=None, ge=0, description="default: 2 s before the end")
    parts: list[Part] = Field(default_factory=lambda: list(ALL_PARTS), min_length=1)


def _expected_identity(obs: Observation, datasheet: Any, device: str) -> dict[str, Any]:
    identity = datasheet.identity.model_dump() if datasheet.identity is not None else {}
    truth = next((d.truth for d in obs.line if d.device == device), obs.truth)
    serial = next(
        (v["serial_number"] for _, v in reversed(truth.samples) if "serial_number" in v), None
    )
    return {**identity, "serial_number": serial}


def _devices(ctx: CheckContext[LineIdentifierParams]) -> dict[str, Any]:
    """device -> its datasheet: every device of the line, else the lab's one device."""
    obs = ctx.observation
    if obs.line:
        return {entry.device: entry.datasheet for entry in obs.line}
    return {obs.device: ctx.datasheet}


def _body(record: ProbeRecord | None) -> Any:
    return record.detail.get("body") if record is not None and record.ok else None


def _last(obs: Observation, check_id: str, name: str) -> ProbeRecord | None:
    found = [p for p in obs.probes_of(check_id) if p.name == name]
    return found[-1] if found else None


@check("platform_line_identifiers", params=LineIdentifierParams)
def platform_line_identifiers(ctx: CheckContext[LineIdentifierParams]) -> CheckOutcome:
    """Two-level prefixes and one resolvable identifier per device, metadata = its identity."""
    obs, params = ctx.observation, ctx.params
    prefixes = _body(_last(obs, ctx.spec.id, "prefixes"))
    identifiers = _body(_last(obs, ctx.spec.id, "identifiers"))
    by_prefix = {p.get("prefix"): p for p in prefixes or [] if isinstance(p, dict)}
    enterprise = by_prefix.get(params.enterprise_prefix, {})
    parts: list[tuple[Part, str, float, bool]] = [
        (
            "prefixes",
            f"secondary node prefix {params.secondary_prefix} registered",
            1,
            params.secondary_prefix in by_prefix,
        ),
        (
            "prefixes",
            f"enterprise prefix {params.enterprise_prefix} allocated under it",
            2,
            enterprise.get("parent") == params.secondary_prefix,
        ),
    ]
    per_device: dict[str, Any] = {}
    for device, datasheet in _devices(ctx).items():
        mine = [
            r
            for r in identifiers or []
            if isinstance(r, dict)
            and r.get("device") == device
            and r.get("prefix") == params.enterprise_prefix
        ]
        expected = _expected_identity(obs, datasheet, device)
        wanted = {key: expected.get(key) for key in params.fields}
        metadata = mine[0].get("metadata") if mine else None
        sent = (
            {key: metadata.get(key) for key in params.fields}
            if isinstance(metadata, dict)
            else None
        )
        resolved = [_last(obs, ctx.spec.id, f"resolve:{r.get('identifier')}") for r in mine]
        resolves = any(
            isinstance(_body(r), dict) and _body(r).get("device") == device for r in resolved
        )
        parts += [
            (
                "bound",
                f"{device}: an identifier under {params.enterprise_prefix} bound to it",
                1,
                bool(mine),
            ),
            (
                "metadata",
                f"{device}: its metadata equals the device's identity",
                1,
                sent == wanted and None not in wanted.values(),
            ),
            ("resolves", f"{device}: the identifier resolves to it", 1, resolves),
        ]
        per_device[device] = {
            "identifiers": [r.get("identifier") for r in mine],
            "expected": wanted,
            "saw": sent,
            "resolves": resolves,
        }
    evidence = {
        "expected": (
            f"prefix {params.secondary_prefix}, enterprise prefix {params.enterprise_prefix} "
            f"under it, and per device an identifier under it with metadata {params.fields}"
        ),
        "saw": {"prefixes": list(by_prefix.values())[:20], "devices": per_device},
        "where": "GET /api/prefixes, /api/identifiers, /api/resolve/<identifier>",
    }
    selected = [(label, weight, ok) for part, label, weight, ok in parts if part in params.parts]
    return ctx.outcome(selected, evidence)


async def _get(ctx: ProbeContext[LineIdentifierParams], name: str, path: str) -> ProbeRecord:
    base = ctx.env.platform_url
    token = ctx.env.platform_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if base is None:
        ctx.record(name, expected="a running platform", saw="the lab runs no platform", ok=False)
        return ctx.records[-1]
    try:
        async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
            response = await client.get(base.rstrip("/") + path)
        body: Any = response.json()
    except (httpx.HTTPError, ValueError) as error:
        ctx.record(name, expected="HTTP 200", saw=f"{type(error).__name__}: {error}", ok=False)
        return ctx.records[-1]
    status = response.status_code
    ok = status == 200
    ctx.record(name, expected="HTTP 200", saw=f"HTTP {status}", ok=ok, url=path, body=body)
    return ctx.records[-1]


@probe("platform_line_identifiers")
async def probe_line_identifiers(ctx: ProbeContext[LineIdentifierParams]) -> None:
    at = ctx.params.at if ctx.params.at is not None else max(0.0, ctx.lab.duration_s - 2)
    await ctx.sleep_until(at)
    tenant = quote(ctx.tenant, safe="")
    await _get(ctx, "prefixes", f"/api/prefixes?tenant={tenant}")
    listed = await _get(ctx, "identifiers", f"/api/identifiers?tenant={tenant}")
    records = listed.detail.get("body") if listed.ok else None
    for record in records if isinstance(records, list) else []:
        identifier = record.get("identifier") if isinstance(record, dict) else None
        if isinstance(identifier, str) and record.get("prefix") == ctx.params.enterprise_prefix:
            await _get(ctx, f"resolve:{identifier}", f"/api/resolve/{quote(identifier, safe='/')}")
