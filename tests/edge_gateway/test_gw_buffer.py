"""StoreAndForwardBuffer: order, overflow counting, persistence of messages and seq."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_gateway.buffer import BufferedMessage, StoreAndForwardBuffer
from edge_gateway.publisher import as_replayed

pytestmark = pytest.mark.unit


def test_messages_come_back_in_order_until_removed(tmp_path: Path) -> None:
    with StoreAndForwardBuffer(tmp_path / "b.db") as buffer:
        for n in range(10):
            buffer.append("t", f"m{n}".encode())
        first = buffer.peek(4)
        assert [m.payload for m in first] == [b"m0", b"m1", b"m2", b"m3"]
        assert [m.payload for m in buffer.peek(2, after_id=first[-1].id)] == [b"m4", b"m5"]
        buffer.remove([m.id for m in first])
        assert len(buffer) == 6
        assert buffer.peek(1)[0].payload == b"m4"
        buffer.remove([first[0].id])  # removing twice is harmless
        assert len(buffer) == 6


def test_drop_oldest_counts_drops(tmp_path: Path) -> None:
    with StoreAndForwardBuffer(tmp_path / "b.db", capacity=3) as buffer:
        for n in range(5):
            buffer.append("t", f"m{n}".encode())
        assert len(buffer) == 3
        assert buffer.dropped == 2
        assert [m.payload for m in buffer.peek(10)] == [b"m2", b"m3", b"m4"]


def test_drop_newest_refuses_new_messages(tmp_path: Path) -> None:
    with StoreAndForwardBuffer(tmp_path / "b.db", capacity=3, overflow="drop_newest") as buffer:
        ids = [buffer.append("t", f"m{n}".encode()) for n in range(5)]
        assert ids[3:] == [None, None]
        assert buffer.dropped == 2
        assert [m.payload for m in buffer.peek(10)] == [b"m0", b"m1", b"m2"]


def test_messages_seq_and_drops_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "b.db"
    with StoreAndForwardBuffer(path, capacity=2) as buffer:
        for _ in range(3):
            seq = buffer.next_seq()
            buffer.append("t", f"s{seq}".encode())
        assert buffer.last_seq == 2
    with StoreAndForwardBuffer(path, capacity=2) as buffer:
        assert len(buffer) == 2
        assert buffer.dropped == 1
        assert buffer.next_seq() == 3
        assert [m.payload for m in buffer.peek(10)] == [b"s1", b"s2"]
        assert buffer.mark_replayed() == 2
        assert all(m.replayed for m in buffer.peek(10))


def test_bulk_append_is_one_transaction(tmp_path: Path) -> None:
    with StoreAndForwardBuffer(tmp_path / "b.db", capacity=1000) as buffer:
        ids = buffer.append_many((("t", b"x") for _ in range(1500)), replayed=True)
        assert len(ids) == 1500
        assert len(buffer) == 1000 and buffer.dropped == 500


def test_replayed_payload_keeps_everything_else() -> None:
    live = b'{"v":1,"seq":3,"ts":5,"metrics":{},"quality":null,"replayed":false}'
    assert as_replayed(live) == live.replace(b"false}", b"true}")
    assert as_replayed(b"other") == b"other"


def test_oversized_reports_are_split_with_consecutive_seqs(tmp_path: Path) -> None:
    import json

    from edge_gateway.metrics import GatewayCounters
    from edge_gateway.publisher import MAX_TELEMETRY_BYTES, TelemetryPublisher
    from edge_gateway.reporting import Report
    from iiotlab.mqtt import MqttClient

    client = MqttClient("mqtt://127.0.0.1:1", client_id="never-connected")
    names = [f"tag_with_a_long_name_{i:05d}" for i in range(12_000)]
    report = Report(5, dict.fromkeys(names, 1.5), dict.fromkeys(names, "good"))
    with StoreAndForwardBuffer(tmp_path / "b.db") as buffer:
        publisher = TelemetryPublisher(
            client, buffer, tenant="t", device="d", counters=GatewayCounters()
        )
        last = publisher.submit(report)
        messages = [json.loads(m.payload) for m in buffer.peek(100)]
    assert len(messages) > 1 and last == len(messages) - 1
    assert [m["seq"] for m in messages] == list(range(len(messages)))
    assert all(m["ts"] == 5 for m in messages)
    assert all(row.replayed for row in buffer_rows(tmp_path))  # made while offline
    assert sorted(k for m in messages for k in m["metrics"]) == names
    assert max(len(m.payload) for m in buffer_rows(tmp_path)) <= MAX_TELEMETRY_BYTES


def buffer_rows(tmp_path: Path) -> list[BufferedMessage]:
    with StoreAndForwardBuffer(tmp_path / "b.db") as buffer:
        return buffer.peek(100)
