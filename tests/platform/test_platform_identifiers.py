"""Identifier resolution: syntax rules, prefixes, registration, resolve."""

from __future__ import annotations

import pytest
from platform_helpers import RunningApp

from iiot_platform.identifiers import IdentifierSyntaxError, parse_identifier

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("88.100.1/PUMP-0001", ("88.100.1", "PUMP-0001")),
        ("0.NA/x", None),
        ("86/泵-01", ("86", "泵-01")),
        ("88.100.1/line/3/valve", ("88.100.1", "line/3/valve")),
    ],
)
def test_valid_and_invalid_forms(identifier: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(IdentifierSyntaxError, match="segment 'NA'"):
            parse_identifier(identifier)
    else:
        assert parse_identifier(identifier) == expected


@pytest.mark.parametrize(
    ("identifier", "words"),
    [
        ("88.100.1PUMP", "has no '/'"),
        ("88.100.1/", "empty suffix"),
        ("/PUMP", "prefix is empty"),
        ("88.0100.1/P", "leading zeros"),
        ("88..1/P", "segment ''"),
        ("1.2.3.4.5.6.7.8.9/P", "at most 8"),
        ("88.100.1/PUMP 1", "position 4"),
        ("88.100.1/a?b", "'?'"),
        ("88.100.1/" + "x" * 129, "at most 128"),
    ],
)
def test_malformed_identifiers_say_which_rule(identifier: str, words: str) -> None:
    with pytest.raises(IdentifierSyntaxError) as caught:
        parse_identifier(identifier)
    assert words in str(caught.value)


async def test_register_and_resolve_through_the_api(running_app: RunningApp) -> None:
    async with running_app() as (app, api):
        from platform_helpers import service_of

        await service_of(app).ingestor.process([])
        created = await api.post(
            "/api/prefixes", json={"prefix": "88.100.1", "description": "ACME"}
        )
        assert created.status_code == 201 and created.json()["tenant"] == "demo"
        duplicate = await api.post("/api/prefixes", json={"prefix": "88.100.1"})
        assert duplicate.status_code == 409 and "already registered" in duplicate.text
        bad_prefix = await api.post("/api/prefixes", json={"prefix": "88.A"})
        assert bad_prefix.status_code == 422 and "segment 'A'" in bad_prefix.text

        await api.put("/api/devices/demo/tank-1", json={"description": "Tank 1"})
        registered = await api.post(
            "/api/identifiers",
            json={
                "identifier": "88.100.1/PUMP-0001",
                "device": "tank-1",
                "metadata": {"vendor": "ACME", "model": "P-100"},
            },
        )
        assert registered.status_code == 201, registered.text
        resolved = await api.get("/api/resolve/88.100.1/PUMP-0001")
        assert resolved.status_code == 200
        body = resolved.json()
        assert body["device"] == "tank-1" and body["metadata"]["vendor"] == "ACME"
        assert body["device_info"]["description"] == "Tank 1"

        unknown_prefix = await api.get("/api/resolve/88.999/PUMP-0001")
        assert unknown_prefix.status_code == 404 and "not registered" in unknown_prefix.text
        unknown_suffix = await api.get("/api/resolve/88.100.1/NOPE")
        assert unknown_suffix.status_code == 404
        malformed = await api.get("/api/resolve/88.100.1")
        assert malformed.status_code == 422 and "no '/'" in malformed.text
        unregistered = await api.post("/api/identifiers", json={"identifier": "77.1/X"})
        assert unregistered.status_code == 404 and "POST /api/prefixes" in unregistered.text
        listed = (await api.get("/api/identifiers")).json()
        assert [i["identifier"] for i in listed] == ["88.100.1/PUMP-0001"]


async def test_two_level_allocation_under_a_secondary_node(running_app: RunningApp) -> None:
    from iiot_platform.settings import ApiToken

    tokens = (
        ApiToken("t-node", "student", "node", "node"),
        ApiToken("t-other", "student", "other", "other"),
    )
    node = {"Authorization": "Bearer t-node"}
    other = {"Authorization": "Bearer t-other"}
    async with running_app(auth_enabled=True, tokens=tokens) as (_, api):
        secondary = await api.post("/api/prefixes", headers=node, json={"prefix": "88.100.7"})
        assert secondary.status_code == 201 and secondary.json()["parent"] is None
        enterprise = await api.post("/api/prefixes", headers=node, json={"prefix": "88.100.7.3"})
        assert enterprise.status_code == 201, enterprise.text
        assert enterprise.json()["parent"] == "88.100.7"
        deeper = await api.post("/api/prefixes", headers=node, json={"prefix": "88.100.7.3.1.2"})
        assert deeper.json()["parent"] == "88.100.7.3"  # the longest registered ancestor

        intruder = await api.post("/api/prefixes", headers=other, json={"prefix": "88.100.7.4"})
        assert intruder.status_code == 403 and "only its owner allocates" in intruder.text
        unrelated = await api.post("/api/prefixes", headers=other, json={"prefix": "88.1007"})
        assert unrelated.status_code == 201 and unrelated.json()["parent"] is None

        registered = await api.post(
            "/api/identifiers", headers=node, json={"identifier": "88.100.7.3/TK-1"}
        )
        assert registered.status_code == 201 and registered.json()["prefix"] == "88.100.7.3"
        listed = (await api.get("/api/prefixes", headers=node)).json()
        assert {p["prefix"]: p["parent"] for p in listed} == {
            "88.100.7": None,
            "88.100.7.3": "88.100.7",
            "88.100.7.3.1.2": "88.100.7.3",
        }
