"""The reference solution of a lab with exactly one fault, for the grader's own tests.

    python faulty_gateway.py <lab solution folder> <fault>

faults: none, word-order (the first 32/64-bit tag decoded with the wrong word order),
no-store-forward (reports dropped while offline), restamp (the backlog replayed with the
time of the replay as its ts), no-heartbeat, plain-opcua (no OPC UA security).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _solution(folder: Path) -> Any:
    spec = importlib.util.spec_from_file_location("lab_solution", folder / "gateway.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _swap_word_order() -> None:
    """Flip the word order of the first 32/64-bit tag of the datasheet."""
    path = Path(os.environ["IIOTLAB_DATASHEET"])
    sheet = json.loads(path.read_text())
    wide = [
        t
        for t in sheet["tags"]
        if t.get("modbus") and t["modbus"]["type"] in ("int32", "uint32", "float32", "float64")
    ]
    order = wide[0]["modbus"]["word_order"]
    wide[0]["modbus"]["word_order"] = "ABCD" if order != "ABCD" else "CDAB"
    edited = Path(os.environ["IIOTLAB_STATE_DIR"]) / "datasheet-edited.json"
    edited.write_text(json.dumps(sheet))
    os.environ["IIOTLAB_DATASHEET"] = str(edited)


def _drop_while_offline() -> None:
    """Number every report but throw it away while the broker is unreachable."""
    from edge_gateway.publisher import TelemetryPublisher

    original = TelemetryPublisher.submit

    def submit(self: Any, report: Any) -> int:
        if not self.client.connected:
            return int(self.buffer.next_seq())
        return int(original(self, report))

    TelemetryPublisher.submit = submit  # type: ignore[method-assign]


def _restamp_replays() -> None:
    """Replay the backlog with ts = the time of the replay (the sampling time is lost)."""
    from edge_gateway.publisher import TelemetryPublisher

    async def publish(self: Any, message: Any) -> None:
        payload = message.payload
        if message.replayed:
            data = json.loads(payload)
            data.update(ts=int(time.time() * 1000), replayed=True)
            payload = json.dumps(data, separators=(",", ":")).encode()
        await self.client.publish(message.topic, payload, qos=message.qos)

    TelemetryPublisher._publish = publish  # type: ignore[method-assign]


def main() -> None:
    folder, fault = Path(sys.argv[1]), sys.argv[2]
    if fault == "word-order":
        _swap_word_order()
    solution = _solution(folder)
    config = solution.lab_config()
    if fault == "no-store-forward":
        _drop_while_offline()
    elif fault == "restamp":
        _restamp_replays()
    elif fault == "no-heartbeat":
        config = config.model_copy(update={"heartbeat_s": 3600.0})
    elif fault == "plain-opcua":
        sources = {
            name: source.model_copy(update={"security_policy": "None", "security_mode": "None"})
            if source.kind == "opcua"
            else source
            for name, source in config.sources.items()
        }
        config = config.model_copy(update={"sources": sources})
    from edge_gateway.cli import serve

    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
