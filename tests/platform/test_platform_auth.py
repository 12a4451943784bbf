"""Auth: a student token cannot read or change another tenant's anything, on ANY route."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from platform_helpers import RunningApp, service_of

from iiot_platform.ingest import RawMessage
from iiot_platform.settings import ApiToken

pytestmark = pytest.mark.unit

TOKENS = (
    ApiToken("t-admin", "admin", None, "root"),
    ApiToken("t-teacher", "instructor", None, "teacher"),
    ApiToken("t-alice", "student", "alice", "alice"),
    ApiToken("t-bob", "student", "bob", "bob"),
)
SECRET_DEVICE = "secretpump-9"


def _messages(tenant: str, device: str) -> list[RawMessage]:
    now = int(time.time() * 1000)
    telemetry = {"v": 1, "device": device, "seq": 1, "ts": now, "metrics": {"level": 9.5}}
    status = {"v": 1, "state": "online", "ts": now}
    return [
        RawMessage(f"iiot/{tenant}/{device}/telemetry", json.dumps(telemetry).encode(), now),
        RawMessage(f"iiot/{tenant}/{device}/status", json.dumps(status).encode(), now),
        RawMessage(f"iiot/{tenant}/{device}/telemetry", b"\xffbroken", now),
    ]


async def _seed_bob(api: httpx.AsyncClient, app: Any) -> dict[str, str]:
    bob = {"Authorization": "Bearer t-bob"}
    rule = await api.post(
        "/api/rules",
        headers=bob,
        json={"name": "bob-high", "kind": "threshold", "metric": "level", "high": 1.0},
    )
    await service_of(app).ingestor.process(_messages("bob", SECRET_DEVICE))
    alarm = (await api.get("/api/alarms", headers=bob)).json()[0]
    command = await api.post(
        f"/api/devices/bob/{SECRET_DEVICE}/commands",
        headers=bob,
        json={"metric": "pump_on", "value": True},
    )
    await api.post("/api/prefixes", headers=bob, json={"prefix": "88.200.7"})
    await api.post(
        "/api/identifiers",
        headers=bob,
        json={"identifier": "88.200.7/BOB-1", "device": SECRET_DEVICE},
    )
    letters = (await api.get("/api/dead-letters", headers=bob)).json()["dead_letters"]
    return {
        "letter_id": str(letters[0]["id"]),
        "tenant": "bob",
        "device": SECRET_DEVICE,
        "rule_id": rule.json()["id"],
        "alarm_id": alarm["id"],
        "command_id": command.json()["id"],
        "identifier": "88.200.7/BOB-1",
    }


BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/devices/{tenant}/{device}"): {"description": "hijacked"},
    ("POST", "/api/devices/{tenant}/{device}/commands"): {"metric": "pump_on", "value": False},
    ("POST", "/api/rules"): {"name": "evil", "kind": "stale", "stale_s": 1, "tenant": "bob"},
    ("POST", "/api/prefixes"): {"prefix": "88.200.8", "tenant": "bob"},
    ("POST", "/api/identifiers"): {"identifier": "88.200.7/EVIL", "device": SECRET_DEVICE},
    ("POST", "/api/tokens"): {"role": "student", "tenant": "bob"},
}
LEAKS = ("bob", SECRET_DEVICE, "88.200.7", "9.5")


def _fill(path: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        assert name in ids, f"the auth walk does not know path parameter {name!r} of {path}"
        return ids[name]

    return re.sub(r"\{([^}]+)\}", value, path)


STREAM = "/api/events"


async def test_student_cannot_reach_another_tenant_on_any_route(running_app: RunningApp) -> None:
    async with running_app(auth_enabled=True, tokens=TOKENS) as (app, api):
        ids = await _seed_bob(api, app)
        alice = {"Authorization": "Bearer t-alice"}
        walked = 0
        for route in app.routes:
            if not isinstance(route, APIRoute) or not route.path.startswith("/api"):
                continue
            if route.path == STREAM:  # endless: test_platform_events opens it on a socket
                continue
            for method in route.methods:
                path = _fill(route.path, ids)
                body = BODIES.get((method, route.path))
                for query in ("", "?tenant=bob", "?metric=level"):
                    answer = await api.request(method, path + query, headers=alice, json=body)
                    walked += 1
                    where = f"{method} {path}{query} -> {answer.status_code} {answer.text[:200]}"
                    if answer.status_code < 300:
                        assert not any(leak in answer.text for leak in LEAKS), where
                    else:
                        assert answer.status_code in (403, 404, 409, 422), where
        assert walked > 60
        await _bob_is_untouched(api, ids)


async def _bob_is_untouched(api: httpx.AsyncClient, ids: dict[str, str]) -> None:
    bob = {"Authorization": "Bearer t-bob"}
    assert [r["name"] for r in (await api.get("/api/rules", headers=bob)).json()] == ["bob-high"]
    alarm = (await api.get(f"/api/alarms/{ids['alarm_id']}", headers=bob)).json()
    assert alarm["state"] == "active"
    device = (await api.get(f"/api/devices/bob/{SECRET_DEVICE}", headers=bob)).json()
    assert device["description"] == ""
    commands = (await api.get(f"/api/devices/bob/{SECRET_DEVICE}/commands", headers=bob)).json()
    assert len(commands) == 1
    prefixes = (await api.get("/api/prefixes", headers=bob)).json()
    assert [p["prefix"] for p in prefixes] == ["88.200.7"]
    identifiers = (await api.get("/api/identifiers", headers=bob)).json()
    assert [i["identifier"] for i in identifiers] == ["88.200.7/BOB-1"]
    letters = (await api.get("/api/dead-letters", headers=bob)).json()["dead_letters"]
    assert len(letters) == 1 and letters[0]["tenant"] == "bob"
    letter = (await api.get(f"/api/dead-letters/{ids['letter_id']}", headers=bob)).json()
    assert letter["payload_base64"] == "/2Jyb2tlbg=="


async def test_roles_and_missing_tokens(running_app: RunningApp) -> None:
    async with running_app(auth_enabled=True, tokens=TOKENS) as (app, api):
        await _seed_bob(api, app)
        assert (await api.get("/api/devices")).status_code == 401
        assert (
            await api.get("/api/devices", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        assert (await api.get("/api/health")).status_code == 200
        teacher = {"Authorization": "Bearer t-teacher"}
        assert [d["tenant"] for d in (await api.get("/api/devices", headers=teacher)).json()] == [
            "bob"
        ]
        assert (await api.get("/api/stats", headers=teacher)).status_code == 200
        assert (await api.get("/api/tokens", headers=teacher)).status_code == 403
        admin = {"Authorization": "Bearer t-admin"}
        made = await api.post(
            "/api/tokens", headers=admin, json={"role": "student", "tenant": "carol"}
        )
        token = made.json()["token"]
        me = (await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
        assert me == {"role": "student", "tenant": "carol", "name": "student", "auth_enabled": True}
        by_query = await api.get(f"/api/devices?token={token}")
        assert by_query.status_code == 200 and by_query.json() == []
