"""opcua_subscription and opcua_units_published on hand-made observations."""

from __future__ import annotations

import json
import time
from typing import Any

from grader.checks.registry import CheckContext, CheckOutcome, default_registry
from grader.observation import (
    MonitoredItemRecord,
    Observation,
    ObservedMessage,
    OpcuaSession,
    ProbeRecord,
)
from grader.spec import Bilingual, CheckSpec
from simulators.opcua.units import eu_unit_id
from simulators.variants import build_datasheet
from tests.grader.builders import LAB, T0, TENANT, ScriptedBroker

SHEET = build_datasheet("boiler", "net-02-opcua-data-access", TENANT, "test-secret")
DEVICE = SHEET.device or "boiler-1"
TAGS = ["temperature", "pressure", "heater_power"]


def node(tag: str) -> str:
    spec = SHEET.tag(tag).opcua
    assert spec is not None
    return spec.node_id.replace("ns=2;", "ns=3;")  # the client's namespace index may differ


def item(tag: str, deadband: str = "absolute", value: float = 0.2) -> MonitoredItemRecord:
    return MonitoredItemRecord(T0 + 900, node(tag), 13, 100.0, deadband, value)


def session(**activity: Any) -> OpcuaSession:
    return OpcuaSession(T0 + 800, "127.0.0.1:5000", "None", "None", **activity)


def run(kind: str, obs: Observation, **params: Any) -> CheckOutcome:
    check_kind = default_registry().get(kind)
    assert check_kind is not None
    spec = CheckSpec(id="c", kind=kind, points=10, params=params, hint=Bilingual(en="h", zh="h"))
    context: CheckContext[Any] = CheckContext(
        LAB, spec, check_kind.params.model_validate(params), SHEET, obs
    )
    return check_kind.evaluate(context)


def observe(sessions: tuple[OpcuaSession, ...] = (), **extra: Any) -> Observation:
    return Observation(
        tenant=TENANT,
        device=DEVICE,
        started_ms=T0,
        finished_ms=T0 + 15_000,
        opcua_sessions=sessions,
        startup_s=2.0,
        **extra,
    )


def subscription(obs: Observation) -> CheckOutcome:
    return run("opcua_subscription", obs, tags=TAGS, deadband_tags=TAGS)


def test_subscribing_gateway_with_deadbands_passes() -> None:
    good = session(monitored_items=tuple(item(t) for t in TAGS), browses=3)
    outcome = subscription(observe((good,)))
    assert outcome.passed, outcome.message
    assert outcome.points == 10


def test_polling_gateway_fails_monitoring_and_polling_parts() -> None:
    reads = tuple((T0 + 3000 + 500 * i, node(t)) for i in range(20) for t in TAGS)
    outcome = subscription(observe((session(value_reads=reads, browses=2),)))
    assert not outcome.passed
    assert "monitored items on every tag" in outcome.message
    assert "not polled with Read" in outcome.message
    assert outcome.evidence["saw"]["value_reads_after_grace"]["temperature"] == 20


def test_reads_during_the_startup_grace_are_not_polling() -> None:
    reads = tuple((T0 + 1000, node(t)) for t in TAGS for _ in range(5))  # before the grace
    obs = observe(
        (session(monitored_items=tuple(item(t) for t in TAGS), value_reads=reads, browses=1),)
    )
    assert subscription(obs).passed


def test_missing_deadband_loses_only_the_deadband_part() -> None:
    items = (item("temperature"), item("pressure", "none", 0.0), item("heater_power"))
    outcome = subscription(observe((session(monitored_items=items, browses=1),)))
    assert outcome.message == "failed: a deadband DataChangeFilter on pressure"
    assert outcome.points == 7.5  # weights: session 1, browse 1, items 2, deadband 2, no polling 2


def test_a_zero_deadband_is_no_deadband() -> None:
    items = tuple(item(t, "absolute", 0.0) for t in TAGS)
    assert not subscription(observe((session(monitored_items=items, browses=1),))).passed


def test_silence_earns_nothing() -> None:
    outcome = subscription(observe())
    assert outcome.points == 0


def test_a_session_that_only_reads_nothing_gets_no_polling_credit() -> None:
    outcome = subscription(observe((session(browses=1),)))
    assert outcome.points == 2.5  # session and browse only


def meta_message(tags: dict[str, Any], retain: bool = True) -> ObservedMessage:
    payload = {"v": 1, "device": DEVICE, "ts": T0 + 1000, "tags": tags}
    return ObservedMessage(
        f"iiot/{TENANT}/{DEVICE}/meta", json.dumps(payload).encode(), T0 + 1000, retain
    )


def served(tag: str) -> dict[str, Any]:
    spec = SHEET.tag(tag)
    assert spec.range is not None
    return {"unit": spec.unit, "unit_id": eu_unit_id(spec.unit), "eu_range": list(spec.range)}


def retained_probe(ok: bool) -> tuple[ProbeRecord, ...]:
    return (ProbeRecord("c", "retained_meta", T0 + 5000, "retained meta", "x", ok),)


def units(obs: Observation) -> CheckOutcome:
    return run("opcua_units_published", obs, tags=TAGS)


def test_units_equal_to_the_servers_pass() -> None:
    obs = observe(
        messages=(meta_message({t: served(t) for t in TAGS}),), probes=retained_probe(True)
    )
    outcome = units(obs)
    assert outcome.passed, outcome.message
    assert outcome.evidence["expected"]["temperature"]["unit_id"] == eu_unit_id("degC") > 0


def test_units_without_unit_id_fail_per_tag() -> None:
    tags = {t: {**served(t), "unit_id": None} for t in TAGS}
    tags["pressure"] = served("pressure")
    obs = observe(messages=(meta_message(tags),), probes=retained_probe(True))
    outcome = units(obs)
    assert "temperature: unit" in outcome.message and "pressure" not in outcome.message
    assert outcome.points == 5.0


def test_wrong_range_fails() -> None:
    tags = {t: served(t) for t in TAGS}
    tags["temperature"] = {**served("temperature"), "eu_range": [0.0, 100.0]}
    obs = observe(messages=(meta_message(tags),), probes=retained_probe(True))
    assert "temperature: unit" in units(obs).message


def test_not_retained_loses_the_retained_part_only() -> None:
    obs = observe(
        messages=(meta_message({t: served(t) for t in TAGS}, retain=False),),
        probes=retained_probe(False),
    )
    outcome = units(obs)
    assert outcome.message.startswith("failed: a retained meta message")
    assert outcome.points == 7.5


def test_a_meta_that_breaks_the_contract_scores_no_tag() -> None:
    bad = {t: {**served(t), "colour": "red"} for t in TAGS}
    outcome = units(observe(messages=(meta_message(bad),), probes=retained_probe(False)))
    assert outcome.points == 0
    assert "Extra inputs" in str(outcome.evidence["saw"])


def test_no_meta_scores_nothing() -> None:
    assert units(observe()).points == 0


async def probe_with(broker: ScriptedBroker, started: float | None = None) -> ProbeRecord:
    from grader.checks.opcua_access import UnitsParams, probe_retained_meta
    from grader.probes.context import ProbeContext

    records: list[ProbeRecord] = []
    context: ProbeContext[Any] = ProbeContext(
        "c",
        UnitsParams(at=0, until_s=1.2),
        LAB,
        SHEET,
        TENANT,
        DEVICE,
        broker,
        time.monotonic() if started is None else started,
        records,  # type: ignore[arg-type]
    )
    await probe_retained_meta(context)
    assert len(records) == 1
    return records[0]


async def test_retained_probe_subscribes_afresh_after_a_live_publish() -> None:
    tags = {t: served(t) for t in TAGS}
    broker = ScriptedBroker([meta_message(tags, retain=False), meta_message(tags, retain=True)])
    record = await probe_with(broker)
    assert record.ok and broker.subscriptions == 2


async def test_retained_probe_fails_a_gateway_that_never_retains() -> None:
    live = [meta_message({t: served(t) for t in TAGS}, retain=False) for _ in range(5)]
    broker = ScriptedBroker(live)
    started = time.monotonic()
    record = await probe_with(broker, started)
    assert not record.ok and "retain=False" in record.saw
    # fresh subscriptions until until_s (1.2 s), RETRY_S (0.5 s) apart, then one more: at
    # 0, 0.5, 1.0, 1.5 on an idle machine; however late the sleeps, the last is past 1.2 s
    *before, last = broker.times
    assert len(before) >= 1 and all(t < started + 1.2 for t in before)
    assert last >= started + 1.2
