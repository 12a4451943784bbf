"""Commands from `iiot/{tenant}/{device}/cmd`: allowlist, range check, write, ack.

Only tags marked `writable: true` in the config may be written, and a numeric value must
lie inside the tag's `range`. Every command with an id gets an ack; `error` says why not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from edge_gateway.config import GatewayConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.sources.base import Source, WriteError
from iiotlab.errors import PayloadError
from iiotlab.payloads import Command, CommandAck, MetricValue, decode_payload

logger = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10.0


class CommandHandler:
    def __init__(
        self,
        config: GatewayConfig,
        sources: Mapping[str, Source],
        counters: GatewayCounters | None = None,
    ) -> None:
        self._config = config
        self._sources = sources
        self._counters = counters or GatewayCounters()

    async def handle(self, raw: bytes) -> CommandAck | None:
        """The ack for one raw command; None when it has no id to answer to."""
        self._counters.commands += 1
        try:
            command = decode_payload("cmd", raw)
        except PayloadError as exc:
            command_id = _id_of(raw)
            logger.warning("bad command %r: %s", command_id, exc)
            self._counters.errors += 1
            return _ack(command_id, str(exc)) if command_id else None
        assert isinstance(command, Command)
        error = self.refusal(command.metric, command.value)
        if error is None:
            error = await self._write(command.metric, command.value)
        if error is not None:
            logger.warning("command %s refused: %s", command.id, error)
        else:
            logger.info("command %s: wrote %s = %r", command.id, command.metric, command.value)
        return _ack(command.id, error)

    def refusal(self, metric: str, value: MetricValue) -> str | None:
        """Why a write of `value` to `metric` is not allowed, or None when it is."""
        try:
            tag = self._config.tag(metric)
        except KeyError:
            return f"unknown metric {metric!r}: this gateway has no such tag"
        if not tag.writable:
            return f"metric {metric!r} is not writable (not allowed by the gateway config)"
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if tag.type == "bool" or tag.bit is not None or tag.table in ("coil", "discrete"):
            if not isinstance(value, bool) and not (numeric and value in (0, 1)):
                return f"metric {metric!r} takes true or false, got {value!r}"
        elif tag.type == "string":
            if not isinstance(value, str):
                return f"metric {metric!r} takes text, got {value!r}"
        elif not numeric:
            return f"metric {metric!r} takes a number, got {value!r}"
        if numeric and tag.range is not None:
            low, high = tag.range
            if not low <= float(value) <= high:
                return f"value {value!r} is outside the range [{low}, {high}] of {metric!r}"
        return None

    async def _write(self, metric: str, value: MetricValue) -> str | None:
        tag = self._config.tag(metric)
        source = self._sources.get(tag.source)
        if source is None:
            return f"source {tag.source!r} of {metric!r} is not running"
        try:
            await asyncio.wait_for(source.write(metric, value), WRITE_TIMEOUT_S)
        except WriteError as exc:
            self._counters.errors += 1
            return f"write to {metric!r} failed: {exc}"
        except TimeoutError:
            self._counters.errors += 1
            return f"write to {metric!r} timed out after {WRITE_TIMEOUT_S} s"
        return None


def _ack(command_id: str, error: str | None) -> CommandAck:
    return CommandAck(v=1, id=command_id[:128], ok=error is None, error=error)


def _id_of(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
