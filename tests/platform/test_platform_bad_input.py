"""A flood of broken messages: the platform keeps serving, dead-letters each with a reason,
and loses nothing valid."""

from __future__ import annotations

import base64
import json

import pytest
from platform_helpers import RunningApp, eventually, publisher, service_of, telemetry

from iiotlab.mqtt import Broker

pytestmark = pytest.mark.integration

GOOD = {"v": 1, "device": "tank-1", "seq": 1, "ts": 1_763_719_200_000, "metrics": {"level": 1.0}}


def _bad(**changes: object) -> bytes:
    body = dict(GOOD, **changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


BAD_MESSAGES: list[tuple[str, str, bytes, str]] = [
    # (label, topic, payload, expected words in the reason)
    ("not json", "telemetry", b"{level: 1", "not JSON"),
    ("not an object", "telemetry", b"[1, 2, 3]", "JSON object"),
    ("non-utf8", "telemetry", b"\xff\xfe\x00garbage\x80", "UTF-8"),
    ("empty", "telemetry", b"", "not JSON"),
    ("seq as text", "telemetry", _bad(seq="7"), "seq"),
    ("metrics a list", "telemetry", _bad(metrics=[1, 2]), "metrics"),
    ("negative ts", "telemetry", _bad(ts=-5), "ts"),
    ("missing seq", "telemetry", _bad(seq=...), "seq"),
    ("missing v", "telemetry", _bad(v=...), "'v'"),
    ("version 2", "telemetry", _bad(v=2), "'v'"),
    (
        "infinite",
        "telemetry",
        b'{"v":1,"device":"tank-1","seq":3,"ts":1,"metrics":{"x":1e999}}',
        "finite",
    ),
    ("64-bit overflow", "telemetry", _bad(metrics={"x": 2**70}), "64 bits"),
    ("long string", "telemetry", _bad(metrics={"x": "a" * 5000}), "1024"),
    ("huge payload", "telemetry", b'{"v":1,"pad":"' + b"x" * 300_000 + b'"}', "limit"),
    ("extra field", "telemetry", _bad(colour="red"), "colour"),
    ("wrong device", "telemetry", _bad(device="boiler-1"), "device"),
    ("bad quality", "telemetry", _bad(quality={"level": "great"}), "quality"),
    ("status state", "status", b'{"v":1,"state":"sleepy","ts":1}', "state"),
    ("ack unknown", "cmd/ack", b'{"v":1,"id":"nope","ok":true,"error":null}', "not a command"),
    ("unknown kind", "garbage", b"{}", "unknown message kind"),
]


async def test_flood_of_bad_input_is_dead_lettered(broker: Broker, running_app: RunningApp) -> None:
    async with running_app(broker_url=broker.url) as (app, api):
        service = service_of(app)
        client = await publisher(broker.url)
        try:
            seq = 0
            for _ in range(3):
                for _label, kind, payload, _reason in BAD_MESSAGES:
                    seq += 1
                    await client.publish("iiot/demo/tank-1/telemetry", telemetry("tank-1", seq))
                    await client.publish(f"iiot/demo/tank-1/{kind}", payload)
            bad_total = 3 * len(BAD_MESSAGES)
            await eventually(lambda: service.ingestor.stats.received >= bad_total + seq, 20)
            await service.ingestor.join()
            assert (await api.get("/api/health")).json()["status"] == "ok"
            assert await service.store.count("demo", "tank-1") == seq

            letters = (await api.get("/api/dead-letters?limit=1000")).json()["dead_letters"]
            assert len(letters) == bad_total
            newest_first = letters[: len(BAD_MESSAGES)][::-1]
            keep = service.settings.dead_letter_payload_bytes
            for (label, kind, payload, words), letter in zip(
                BAD_MESSAGES, newest_first, strict=True
            ):
                assert letter["topic"] == f"iiot/demo/tank-1/{kind}", label
                assert words in letter["reason"], (label, letter["reason"])
                assert "payload_base64" not in letter, label
                assert letter["tenant"] == "demo" and letter["size"] == len(payload)
                one = (await api.get(f"/api/dead-letters/{letter['id']}")).json()
                assert base64.b64decode(one["payload_base64"]) == payload[:keep], label
        finally:
            await client.disconnect()
