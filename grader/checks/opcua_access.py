"""OPC UA data access: subscriptions with deadbands instead of polling, units carried along.

Evidence comes from the simulator's OPC UA server: what each client session asked for
(monitored items with their DataChangeFilter, Value reads, browse calls; see
`simulators/opcua/sessions.py`), and what the server itself serves as EngineeringUnits and
EURange. The gateway's retained `meta` message (docs/contract.md) is compared with that.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import ObservedMessage, OpcuaSession
from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import PayloadError
from iiotlab.payloads import Meta, decode_payload
from simulators.base import TagDefinition
from simulators.opcua.units import eu_unit_id
from simulators.plants import plant_class

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

VALUE_ATTRIBUTE = 13  # OPC UA AttributeId of a node's Value
NUMERIC_KINDS = ("float", "int", "counter")
_NAMESPACE = re.compile(r"^ns=\d+;")


def node_key(node_id: str) -> str:
    """A node id without its namespace index (clients may name the namespace by index)."""
    return _NAMESPACE.sub("", node_id.strip())


def _tag_nodes(sheet: Datasheet, names: list[str] | None) -> dict[str, str]:
    """tag name -> node key, for the named tags (default: every numeric tag with a node)."""
    tags: list[TagSpec] = [
        t
        for t in sheet.tags
        if t.opcua is not None and (t.name in names if names is not None else t.range is not None)
    ]
    return {t.name: node_key(t.opcua.node_id) for t in tags if t.opcua is not None}


class SubscriptionParams(CheckParams):
    tags: list[str] | None = Field(
        default=None, description="tags to monitor (default: every numeric tag with a node)"
    )
    deadband_tags: list[str] = Field(
        default_factory=list, description="tags whose monitored item needs a deadband filter"
    )
    max_value_reads: int = Field(
        default=3, ge=0, description="Value reads per tag allowed after the start-up grace"
    )
    require_browse: bool = True


def _monitored(sessions: list[OpcuaSession]) -> dict[str, list[dict[str, Any]]]:
    """node key -> the Value monitored items created on it (every session)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for session in sessions:
        for item in session.monitored_items:
            if item.attribute == VALUE_ATTRIBUTE:
                found.setdefault(node_key(item.node_id), []).append(
                    {
                        "deadband": item.deadband_type,
                        "value": item.deadband_value,
                        "sampling_ms": item.sampling_interval_ms,
                    }
                )
    return found


def _reads_after(sessions: list[OpcuaSession], from_ms: int) -> Counter[str]:
    return Counter(
        node_key(node) for session in sessions for ts, node in session.value_reads if ts >= from_ms
    )


def _filtered(items: list[dict[str, Any]]) -> bool:
    """Every item on the node has an absolute or percent deadband above zero."""
    return bool(items) and all(
        i["deadband"] in ("absolute", "percent") and i["value"] > 0 for i in items
    )


@check("opcua_subscription", params=SubscriptionParams)
def opcua_subscription(ctx: CheckContext[SubscriptionParams]) -> CheckOutcome:
    """Tags monitored by subscription with deadband filters, not polled with reads."""
    obs, params = ctx.observation, ctx.params
    sessions = list(obs.opcua_sessions)
    nodes = _tag_nodes(ctx.datasheet, params.tags)
    missing = sorted(set(params.tags or []) - set(nodes))
    if not nodes or missing:
        return ctx.lab_error(
            f"tags without an OPC UA node in the datasheet: {', '.join(missing) or 'all'}"
        )
    monitored = _monitored(sessions)
    reads = _reads_after(sessions, obs.steady_from_ms)
    unmonitored = sorted(tag for tag, node in nodes.items() if node not in monitored)
    unfiltered = sorted(
        tag for tag in params.deadband_tags if not _filtered(monitored.get(nodes.get(tag, ""), []))
    )
    polled = {
        tag: reads[node] for tag, node in nodes.items() if reads[node] > params.max_value_reads
    }
    any_monitored = len(unmonitored) < len(nodes)
    browses = sum(s.browses for s in sessions)
    parts: list[tuple[str, float, bool]] = [
        ("opened an OPC UA session", 1, bool(sessions)),
    ]
    if params.require_browse:
        parts.append(("browsed the address space (Browse / TranslateBrowsePaths)", 1, browses > 0))
    parts += [
        (f"monitored items on every tag (missing: {', '.join(unmonitored)})", 2, not unmonitored),
        (
            f"a deadband DataChangeFilter on {', '.join(unfiltered) or 'every deadband tag'}",
            2,
            bool(params.deadband_tags) and not unfiltered and any_monitored,
        ),
        (
            "values come by subscription, not polled with Read"
            + (f" (reads: {polled})" if polled else ""),
            2,
            any_monitored and not polled,
        ),
    ]
    evidence = {
        "expected": (
            f"a monitored item (Value attribute) per tag {sorted(nodes)}, a deadband filter on "
            f"{params.deadband_tags}, at most {params.max_value_reads} Value reads per tag "
            "after the start-up grace"
        ),
        "saw": {
            "sessions": len(sessions),
            "browses": browses,
            "monitored": {tag: monitored.get(node, []) for tag, node in nodes.items()},
            "value_reads_after_grace": {tag: reads[node] for tag, node in nodes.items()},
        },
        "where": "the OPC UA server's session log",
    }
    return ctx.outcome(parts, evidence)


class UnitsParams(CheckParams):
    tags: list[str] | None = Field(
        default=None, description="tags whose units and range are graded (default: numeric)"
    )
    at: float = Field(default=8.0, ge=0, description="s after start: first look for the meta")
    until_s: float = Field(
        default=14.0, ge=0, description="s after start: last fresh subscription for the meta"
    )
    wait_s: float = Field(default=3.0, gt=0, description="per fresh subscription")
    relative_tolerance: float = Field(default=1e-6, ge=0)


def served_metadata(sheet: Datasheet, tag: str) -> dict[str, Any] | None:
    """What the simulator's OPC UA server serves for a tag: EngineeringUnits and EURange.

    The address space builds both from the plant's tag definition
    (`simulators/opcua/address_space.py`); None when the tag is not numeric there.
    """
    definitions: dict[str, TagDefinition] = {t.name: t for t in plant_class(sheet.plant).tags}
    definition = definitions.get(tag)
    if definition is None or definition.kind not in NUMERIC_KINDS:
        return None
    low, high = definition.range
    return {
        "unit": definition.unit,
        "unit_id": eu_unit_id(definition.unit),
        "eu_range": [float(low), float(high)],
    }


def _decoded_meta(message: ObservedMessage | None) -> tuple[Meta | None, str | None]:
    if message is None:
        return None, "no meta message"
    try:
        payload = decode_payload("meta", message.payload)
    except PayloadError as error:
        return None, str(error)
    assert isinstance(payload, Meta)
    return payload, None


def _close(a: float, b: float, relative: float) -> bool:
    return math.isclose(a, b, rel_tol=relative, abs_tol=relative)


def _tag_matches(meta: Meta | None, tag: str, expected: dict[str, Any], relative: float) -> bool:
    sent = meta.tags.get(tag) if meta is not None else None
    if sent is None or sent.eu_range is None:
        return False
    return (
        sent.unit == expected["unit"]
        and sent.unit_id == expected["unit_id"]
        and all(
            _close(s, e, relative) for s, e in zip(sent.eu_range, expected["eu_range"], strict=True)
        )
    )


@check("opcua_units_published", params=UnitsParams)
def opcua_units_published(ctx: CheckContext[UnitsParams]) -> CheckOutcome:
    """A retained `meta` message carries each tag's EngineeringUnits and EURange."""
    obs, params = ctx.observation, ctx.params
    names = params.tags or [
        t.name for t in ctx.datasheet.tags if served_metadata(ctx.datasheet, t.name) is not None
    ]
    expected = {name: served_metadata(ctx.datasheet, name) for name in names}
    probes = [p for p in obs.probes_of(ctx.spec.id) if p.name == "retained_meta"]
    retained_ok = bool(probes) and all(p.ok for p in probes)
    metas = obs.of_kind("meta")
    latest = metas[-1] if metas else None
    meta, error = _decoded_meta(latest)
    parts: list[tuple[str, float, bool]] = [
        ("a retained meta message (a late subscriber gets it)", 1, retained_ok),
    ]
    for name, served in expected.items():
        ok = served is not None and _tag_matches(meta, name, served, params.relative_tolerance)
        parts.append((f"{name}: unit, unit id and EURange equal the server's", 1, ok))
    evidence = {
        "expected": expected,
        "saw": meta.model_dump()["tags"] if meta is not None else error,
        "retained_probe": [{"ok": p.ok, "saw": p.saw} for p in probes],
        "where": f"iiot/{obs.tenant}/{obs.device}/meta",
    }
    return ctx.outcome(parts, evidence)


@probe("opcua_units_published")
async def probe_retained_meta(ctx: ProbeContext[UnitsParams]) -> None:
    await ctx.sleep_until(ctx.params.at)
    topic = f"iiot/{ctx.tenant}/{ctx.device}/meta"
    saw, attempts = await ctx.retained(
        topic,
        until_s=max(ctx.params.at, ctx.params.until_s),
        wait_s=ctx.params.wait_s,
        accept=lambda m: _decoded_meta(m)[0] is not None,
    )
    meta, error = _decoded_meta(saw)
    ok = saw is not None and saw.retain and meta is not None
    ctx.record(
        "retained_meta",
        expected="a retained meta message that decodes under the contract",
        saw="nothing retained"
        if saw is None
        else f"retain={saw.retain} {'valid' if meta else error}",
        ok=ok,
        subscriptions=attempts,
    )
