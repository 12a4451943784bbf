"""The reference gateway: sources -> transforms -> report by exception -> buffer -> MQTT.

    async with Gateway(load_gateway_config("gw.yaml")) as gateway:
        await asyncio.Event().wait()

A device or broker that is down never stops the gateway: sources retry with backoff and
mark their tags bad; telemetry waits in the store-and-forward buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from edge_gateway.buffer import StoreAndForwardBuffer
from edge_gateway.commands import CommandHandler
from edge_gateway.config import GatewayConfig, ModbusSourceConfig, TagConfig
from edge_gateway.metrics import GatewayCounters, MetricsServer, prometheus_text
from edge_gateway.publisher import (
    TelemetryPublisher,
    connect_with_backoff,
    make_client,
    status_payload,
)
from edge_gateway.reporting import DeadbandRule, ReportByException
from edge_gateway.sources.base import Source, SourceCycle
from edge_gateway.transforms import TransformSet
from iiotlab.lifecycle import Service
from iiotlab.mqtt import MqttError
from iiotlab.payloads import MetricValue, encode_payload, topic

logger = logging.getLogger(__name__)

STOP_DRAIN_S = 2.0
FIRST_CONNECT_WAIT_S = 5.0


class Gateway(Service):
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.counters = GatewayCounters()
        self.buffer = StoreAndForwardBuffer(
            config.buffer.path, capacity=config.buffer.capacity, overflow=config.buffer.overflow
        )
        self.client = make_client(config.broker, tenant=config.tenant, device=config.device)
        self.publisher = TelemetryPublisher(
            self.client,
            self.buffer,
            tenant=config.tenant,
            device=config.device,
            counters=self.counters,
            inflight=config.broker.inflight,
        )
        self.client.on_connection_change(self._on_connection_change)
        self.sources: dict[str, Source] = {}
        self._reporter = ReportByException(
            _deadbands(config.tags), config.heartbeat_s, max_ages(config)
        )
        self._transforms = TransformSet(config.transforms)
        self._commands = CommandHandler(config, self.sources, self.counters)
        self._metrics_server: MetricsServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._online_before = False
        self._first_attempt = asyncio.Event()
        self._status_topic = topic(config.tenant, config.device, "status")
        self._cmd_topic = topic(config.tenant, config.device, "cmd")

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._stopping = False
        self.buffer.open()
        if self.buffer.mark_replayed():
            logger.info("%d messages from an earlier run wait in the buffer", len(self.buffer))
        self._spawn(self.publisher.run(), "mqtt sender")
        self._spawn(self._mqtt_session(), "mqtt session")
        # Give the broker one connection attempt before the first poll, so the first
        # samples go out live; a broker that is down does not hold the gateway up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), FIRST_CONNECT_WAIT_S)
        self.sources.update(build_sources(self.config, self._on_cycle, self.counters))
        for source in self.sources.values():
            await source.start()
        self._spawn(self._heartbeat_loop(), "heartbeat")
        if self.config.metrics_port is not None:
            self._metrics_server = MetricsServer(
                self.metrics_text, host=self.config.metrics_host, port=self.config.metrics_port
            )
            await self._metrics_server.start()
        logger.info("gateway %s/%s started", self.config.tenant, self.config.device)

    async def stop(self) -> None:
        """Stop sources, send what can be sent, publish `offline`, close. Safe twice."""
        if not self._started:
            return
        self._started = False
        self._stopping = True
        for source in list(self.sources.values()):
            with _logged("stopping a source"):
                await source.stop()
        if self.client.connected:
            await self.publisher.drained(STOP_DRAIN_S)
            with _logged("publishing offline status"):
                await asyncio.wait_for(
                    self.client.publish(self._status_topic, status_payload("offline"), 1, True), 5
                )
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with _logged("disconnecting from the broker"):
            await self.client.disconnect()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        self.buffer.close()
        logger.info("gateway stopped: %s", self.counters.summary())

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_server.port if self._metrics_server else None

    def metrics_text(self) -> str:
        gauges = {
            "buffer_messages": float(len(self.buffer)) if self._started else 0.0,
            "mqtt_connected": 1.0 if self.client.connected else 0.0,
        }
        for name, source in self.sources.items():
            gauges[f'source_connected{{source="{name}"}}'] = 1.0 if source.connected else 0.0
        return prometheus_text(self.counters, gauges, self.config.device)

    def log_counters(self) -> None:
        logger.info("counters: %s buffer=%d", self.counters.summary(), len(self.buffer))

    # -- data path -------------------------------------------------------------------
    def _on_cycle(self, cycle: SourceCycle) -> None:
        values: dict[str, MetricValue | None] = cycle.values
        derived = self._transforms.apply(cycle.ts_ms, dict(cycle.values))
        if derived:
            values = {**values, **derived}
        report = self._reporter.update(values, cycle.ts_ms)
        if report is not None:
            self.publisher.submit(report)

    async def _heartbeat_loop(self) -> None:
        period = min(1.0, self.config.heartbeat_s / 4)
        while True:
            await asyncio.sleep(period)
            report = self._reporter.heartbeat(int(time.time() * 1000))
            if report is not None:
                self.publisher.submit(report)

    # -- MQTT session ------------------------------------------------------------------
    async def _mqtt_session(self) -> None:
        def failed(exc: Exception) -> None:
            self._first_attempt.set()
            self.counters.errors += 1
            logger.warning("broker unreachable: %s (retrying)", exc)

        await connect_with_backoff(self.client, on_error=failed)
        self._first_attempt.set()
        try:
            await self.client.subscribe(self._cmd_topic, qos=1)
        except MqttError as exc:
            self.counters.errors += 1
            logger.error("commands disabled: %s", exc)
        async for message in self.client.messages():
            if message.topic != self._cmd_topic:
                continue
            ack = await self._commands.handle(message.payload)
            if ack is not None:
                with _logged("publishing a command ack"):
                    await self.client.publish(
                        topic(self.config.tenant, self.config.device, "cmd/ack"),
                        encode_payload(ack),
                    )

    def _on_connection_change(self, connected: bool) -> None:
        if self._stopping:
            return
        if not connected:
            logger.warning("broker connection lost; buffering telemetry")
            self.publisher.connection_lost()
            return
        self._spawn(self._announce_online(), "online status")

    async def _announce_online(self) -> None:
        with _logged("publishing online status"):
            await self.client.publish(self._status_topic, status_payload("online"), 1, True)
        if self._online_before:
            self.counters.reconnects += 1
        self._online_before = True
        self.publisher.wake()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())


def build_sources(config: GatewayConfig, sink: Any, counters: GatewayCounters) -> dict[str, Source]:
    """One source object per configured source that has tags."""
    sources: dict[str, Source] = {}
    for name, source_config in config.sources.items():
        tags = [tag for tag in config.tags if tag.source == name]
        if not tags:
            continue
        if isinstance(source_config, ModbusSourceConfig):
            from edge_gateway.sources.modbus import ModbusSource

            sources[name] = ModbusSource(
                name,
                source_config,
                tags,
                sink=sink,
                counters=counters,
                poll_groups=config.poll_groups,
            )
        else:
            from edge_gateway.sources.opcua import OpcuaSource

            sources[name] = OpcuaSource(name, source_config, tags, sink=sink, counters=counters)
    return sources


def max_ages(config: GatewayConfig) -> dict[str, float]:
    """How old a polled value may be before a heartbeat stops calling it good.

    Two poll intervals plus one second: one missed poll is jitter, two mean the reads
    hang or fail. OPC UA tags are not listed (they report changes, not polls).
    """
    ages: dict[str, float] = {}
    for tag in config.tags:
        source = config.sources.get(tag.source)
        if isinstance(source, ModbusSourceConfig):
            interval = (
                config.poll_groups[tag.poll_group] if tag.poll_group else source.poll_interval_s
            )
            ages[tag.name] = 2 * interval + 1.0
    return ages


def _deadbands(tags: list[TagConfig]) -> dict[str, DeadbandRule]:
    rules: dict[str, DeadbandRule] = {}
    for tag in tags:
        if tag.deadband is None:
            continue
        span = tag.range[1] - tag.range[0] if tag.range else None
        rules[tag.name] = DeadbandRule(tag.deadband.absolute, tag.deadband.percent, span)
    return rules


@contextlib.contextmanager
def _logged(action: str) -> Any:
    try:
        yield
    except (MqttError, TimeoutError, OSError) as exc:
        logger.warning("%s failed: %s", action, exc)
