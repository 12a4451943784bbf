"""platform_line_identifiers on hand-made probe answers for a two-device line."""

from __future__ import annotations

from typing import Any

from grader.checks.registry import CheckContext, CheckOutcome, default_registry
from grader.observation import DeviceObservation, Observation, ProbeRecord, TruthSeries
from grader.spec import Bilingual, CheckSpec
from simulators.variants import build_datasheet
from tests.grader.builders import LAB, T0, TENANT

LAB_ID = "net-04-identifier-resolution"
SHEETS = {
    "tank-1": build_datasheet("tank", LAB_ID, TENANT, "test-secret"),
    "boiler-1": build_datasheet("boiler", LAB_ID, TENANT, "test-secret"),
}
SERIALS = {"tank-1": "TA1234567890", "boiler-1": "BO9876543210"}
PARAMS = {"secondary_prefix": "88.100.7", "enterprise_prefix": "88.100.7.1"}


def line() -> tuple[DeviceObservation, ...]:
    return tuple(
        DeviceObservation(
            device,
            sheet.plant,
            sheet,
            TruthSeries(((T0, {"serial_number": SERIALS[device]}),)),
        )
        for device, sheet in SHEETS.items()
    )


def identity(device: str, **changes: Any) -> dict[str, Any]:
    found = SHEETS[device].identity
    assert found is not None
    return {
        "vendor_name": found.vendor_name,
        "product_code": found.product_code,
        "revision": found.revision,
        "serial_number": SERIALS[device],
        **changes,
    }


def record(name: str, body: Any, ok: bool = True) -> ProbeRecord:
    return ProbeRecord("c", name, T0 + 10_000, "HTTP 200", "HTTP 200", ok, {"body": body})


def answers(
    prefixes: list[dict[str, Any]] | None = None,
    metadata: dict[str, dict[str, Any]] | None = None,
    devices: tuple[str, ...] = ("tank-1", "boiler-1"),
) -> tuple[ProbeRecord, ...]:
    if prefixes is None:
        prefixes = [
            {"prefix": "88.100.7", "parent": None},
            {"prefix": "88.100.7.1", "parent": "88.100.7"},
        ]
    identifiers = [
        {
            "identifier": f"88.100.7.1/{device}",
            "prefix": "88.100.7.1",
            "device": device,
            "metadata": (metadata or {}).get(device, identity(device)),
        }
        for device in devices
    ]
    resolved = [record(f"resolve:{i['identifier']}", i) for i in identifiers]
    return (record("prefixes", prefixes), record("identifiers", identifiers), *resolved)


def run(probes: tuple[ProbeRecord, ...], **params: Any) -> CheckOutcome:
    obs = Observation(
        tenant=TENANT,
        device="tank-1",
        started_ms=T0,
        finished_ms=T0 + 14_000,
        probes=probes,
        line=line(),
    )
    kind = default_registry().get("platform_line_identifiers")
    assert kind is not None
    merged = {**PARAMS, **params}
    spec = CheckSpec(
        id="c", kind=kind.name, points=10, params=merged, hint=Bilingual(en="h", zh="h")
    )
    context: CheckContext[Any] = CheckContext(
        LAB, spec, kind.params.model_validate(merged), SHEETS["tank-1"], obs
    )
    return kind.evaluate(context)


def test_a_complete_line_passes() -> None:
    outcome = run(answers())
    assert outcome.passed, outcome.message


def test_a_flat_enterprise_prefix_loses_the_allocation_part() -> None:
    flat = [{"prefix": "88.100.7.1", "parent": None}]
    outcome = run(answers(prefixes=flat), parts=["prefixes"])
    assert outcome.points == 0
    assert run(answers(prefixes=flat), parts=["bound", "metadata", "resolves"]).passed


def test_a_serial_number_not_read_from_the_device_fails_metadata_only() -> None:
    wrong = {"boiler-1": identity("boiler-1", serial_number="HOTWELL75-9446")}
    outcome = run(answers(metadata=wrong))
    assert outcome.message == "failed: boiler-1: its metadata equals the device's identity"


def test_a_forgotten_device_loses_its_parts() -> None:
    outcome = run(answers(devices=("tank-1",)), parts=["bound", "metadata", "resolves"])
    assert outcome.points == 5.0
    assert "boiler-1: an identifier" in outcome.message


def test_an_identifier_that_does_not_resolve_fails_resolves() -> None:
    probes = tuple(
        record(p.name, p.detail["body"], ok=False) if p.name.startswith("resolve:") else p
        for p in answers()
    )
    assert run(probes, parts=["resolves"]).points == 0


def test_no_platform_answer_scores_nothing() -> None:
    assert run((record("prefixes", None, ok=False),)).points == 0
