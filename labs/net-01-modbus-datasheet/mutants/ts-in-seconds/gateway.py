"""net-01 mutant: ts in seconds since the epoch instead of milliseconds.

The mistake: the student wrote int(time.time()) where the contract asks for epoch
milliseconds, so every timestamp is about 1970-01-21.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge_gateway.cli import serve
from edge_gateway.config_builders import config_from_env
from edge_gateway.publisher import TelemetryPublisher
from iiotlab.payloads import Telemetry, encode_payload


def encode_with_seconds(self: TelemetryPublisher, report: Any, seq: int) -> bytes:
    payload = Telemetry.model_construct(
        v=1,
        device=self.device,
        seq=seq,
        ts=report.ts_ms // 1000,  # the mistake: seconds, not milliseconds
        metrics=report.metrics,
        quality=report.quality or None,
        replayed=False,
    )
    return encode_payload(payload)


if __name__ == "__main__":
    TelemetryPublisher._encode = encode_with_seconds  # type: ignore[method-assign]
    asyncio.run(serve(config_from_env()))
