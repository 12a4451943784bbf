"""MQTT side of the gateway: the outbox sender, status with Last Will, command acks.

Every telemetry message goes through the store-and-forward buffer: `submit()` stores it,
the sender publishes stored messages oldest first (up to `inflight` awaiting PUBACK at
once) and removes each only after its PUBACK. A message that missed its live send (the
broker was unreachable, or the connection dropped before PUBACK) is marked replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable

from edge_gateway.buffer import BufferedMessage, StoreAndForwardBuffer
from edge_gateway.config import BrokerConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.reporting import Report
from edge_gateway.sources.base import Backoff
from iiotlab.mqtt import MqttClient, MqttConnectError, parse_mqtt_url
from iiotlab.payloads import MetricValue, Status, Telemetry, encode_payload, topic

logger = logging.getLogger(__name__)

ACK_BATCH = 256  # acknowledged messages deleted per transaction while draining
MAX_TELEMETRY_BYTES = 200_000  # below the contract's 256 KiB, with room for "replayed"
_LIVE_TAIL = b'"replayed":false}'
_REPLAYED_TAIL = b'"replayed":true}'


def as_replayed(payload: bytes) -> bytes:
    """The same telemetry payload with `"replayed": true` (its last field)."""
    if payload.endswith(_LIVE_TAIL):
        return payload[: -len(_LIVE_TAIL)] + _REPLAYED_TAIL
    return payload


def _part(report: Report, names: list[str]) -> Report:
    return Report(
        report.ts_ms,
        {name: report.metrics[name] for name in names if name in report.metrics},
        {name: report.quality[name] for name in names},
        report.heartbeat,
    )


_PLAIN_TYPES = {float, bool}


def status_payload(state: str) -> bytes:
    return encode_payload(Status(v=1, state=state, ts=int(time.time() * 1000)))  # type: ignore[arg-type]


def broker_url(config: BrokerConfig) -> str:
    """The broker URL with the configured credentials (they override the URL's)."""
    endpoint = parse_mqtt_url(config.url)
    if config.username is None:
        return config.url
    from urllib.parse import quote

    scheme = "mqtts" if endpoint.tls else "mqtt"
    password = config.password if config.password is not None else (endpoint.password or "")
    return (
        f"{scheme}://{quote(config.username, safe='')}:{quote(password, safe='')}"
        f"@{endpoint.host}:{endpoint.port}"
    )


def make_client(config: BrokerConfig, *, tenant: str, device: str) -> MqttClient:
    """The gateway's MQTT client, with `offline` as its retained Last Will."""
    return MqttClient(
        broker_url(config),
        client_id=config.client_id or f"iiotlab-gw-{tenant}-{device}",
        ca_file=config.ca_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        will=(topic(tenant, device, "status"), status_payload("offline"), 1, True),
        keepalive=config.keepalive_s,
        max_inflight=0,  # the TelemetryPublisher keeps at most `inflight` in flight
    )


class TelemetryPublisher:
    """Numbers, stores and sends telemetry; see the module docstring."""

    def __init__(
        self,
        client: MqttClient,
        buffer: StoreAndForwardBuffer,
        *,
        tenant: str,
        device: str,
        counters: GatewayCounters,
        inflight: int = 1000,
    ) -> None:
        self.client = client
        self.buffer = buffer
        self.device = device
        self.topic = topic(tenant, device, "telemetry")
        self._counters = counters
        self._inflight = inflight
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._valid_names: set[str] = set()

    def submit(self, report: Report) -> int:
        """Store one report as the next telemetry message(s); the last seq used.

        A report too big for one payload (contract limit 256 KiB) is split by metric.
        """
        payload = self._encode(report, self.buffer.last_seq + 1)
        if len(payload) > MAX_TELEMETRY_BYTES and len(report.quality) > 1:
            names = list(report.quality)
            half = len(names) // 2
            self.submit(_part(report, names[:half]))
            return self.submit(_part(report, names[half:]))
        seq = self.buffer.next_seq()
        live = self.client.connected
        dropped_before = self.buffer.dropped
        self.buffer.append(self.topic, payload, replayed=not live)
        self._counters.dropped += self.buffer.dropped - dropped_before
        if not live:
            self._counters.buffered += 1
        self.wake()
        return seq

    def _encode(self, report: Report, seq: int) -> bytes:
        fields = {
            "v": 1,
            "device": self.device,
            "seq": seq,
            "ts": report.ts_ms,
            "metrics": report.metrics,
            "quality": report.quality or None,
            "replayed": False,
        }
        if self._plain(report.metrics):
            # finite floats under known-good names: what validation would check holds, and
            # validating 2,000 metrics per poll costs more than encoding them
            return encode_payload(Telemetry.model_construct(**fields))  # type: ignore[arg-type]
        return encode_payload(Telemetry(**fields))  # type: ignore[arg-type]

    def _plain(self, metrics: dict[str, MetricValue]) -> bool:
        """Floats and bools, all finite, under names of 1-64 characters: Telemetry's
        rules hold. Checked with set and map calls, not a Python loop per value."""
        values = metrics.values()
        if not set(map(type, values)) <= _PLAIN_TYPES or not all(map(math.isfinite, values)):  # type: ignore[arg-type]
            return False
        if metrics.keys() <= self._valid_names:
            return True
        if all(0 < len(name) <= 64 for name in metrics):
            self._valid_names.update(metrics)
            return True
        return False

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def connection_lost(self) -> None:
        """Whatever is stored now missed its live send."""
        self.buffer.mark_replayed()

    async def drained(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the buffer is empty (True) or `timeout` passed (False)."""
        if not len(self.buffer):
            return True
        self.wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return not len(self.buffer)

    async def run(self) -> None:
        """The sender loop; runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.client.connected and len(self.buffer):
                await self._drain()
            if not len(self.buffer):
                self._idle.set()

    async def _drain(self) -> None:
        """Publish stored messages oldest first with up to `inflight` awaiting PUBACK (a
        sliding window: each PUBACK lets the next one out), and delete acknowledged ones
        in batches of ACK_BATCH, or whenever nothing is in flight. Returns when the
        buffer is empty, the connection is gone, or a publish failed; every publish it
        started has then finished, so the next drain starts again from the oldest."""
        in_flight: set[asyncio.Task[None]] = set()
        acked: list[int] = []
        failures: list[BaseException] = []
        last_id = 0
        replayed = 0

        def finished(task: asyncio.Task[None], message: BufferedMessage) -> None:
            nonlocal replayed
            in_flight.discard(task)
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                acked.append(message.id)
                replayed += message.replayed
            else:
                failures.append(error)
            self._wake.set()

        try:
            while not failures and self.client.connected:
                # delete before refilling: in flight + acknowledged-not-deleted stays
                # below inflight + ACK_BATCH, the most a crash can send twice
                if len(acked) >= ACK_BATCH or not in_flight:
                    replayed = self._forget(acked, replayed)
                room = self._inflight - len(in_flight)
                if room >= min(ACK_BATCH, self._inflight) or not in_flight:
                    for message in self.buffer.peek(room, after_id=last_id):
                        task = asyncio.create_task(self._publish(message))
                        task.add_done_callback(functools.partial(finished, message=message))
                        in_flight.add(task)
                        last_id = message.id
                if not in_flight:
                    break
                await self._wake.wait()
                self._wake.clear()
            if in_flight:  # a failure or a lost connection: let the others finish
                await asyncio.wait(in_flight)
        except asyncio.CancelledError:
            for task in in_flight:
                task.cancel()
            raise
        finally:
            self._forget(acked, replayed)
        if failures:
            self._counters.errors += 1
            logger.info(
                "publish failed (%s); %d messages wait in the buffer", failures[0], len(self.buffer)
            )
            self.connection_lost()

    def _forget(self, acked: list[int], replayed: int) -> int:
        """Delete acknowledged messages (one transaction), count them; replayed left."""
        if acked:
            self.buffer.remove(acked)
            self._counters.published += len(acked)
            self._counters.replayed += replayed
            acked.clear()
        return 0

    async def _publish(self, message: BufferedMessage) -> None:
        payload = as_replayed(message.payload) if message.replayed else message.payload
        await self.client.publish(message.topic, payload, qos=message.qos)


async def connect_with_backoff(
    client: MqttClient,
    *,
    on_error: Callable[[Exception], None],
    maximum: float = 5.0,
) -> None:
    """Connect the first time, however long the broker stays away (auto-reconnect after)."""
    backoff = Backoff(initial=0.2, maximum=maximum)
    while True:
        try:
            await client.connect()
            return
        except MqttConnectError as exc:
            on_error(exc)
            await asyncio.sleep(backoff.next_delay())
