"""Helpers for the gateway tests: configs, an MQTT listener, a cuttable TCP path."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from edge_gateway.config import GatewayConfig, ModbusSourceConfig
from iiotlab.datasheet import Datasheet
from iiotlab.mqtt import Broker, MqttClient, MqttMessage
from simulators.simulation import Simulation

StartBroker = Callable[[], AbstractAsyncContextManager[Broker]]


def matches(value: object, truth: object, tolerance: float) -> bool:
    if isinstance(value, bool) or isinstance(truth, bool) or isinstance(value, str):
        return value == truth
    return (
        isinstance(value, int | float)
        and isinstance(truth, int | float)
        and abs(value - truth) <= tolerance + 1e-9 * max(1.0, abs(truth))
    )


def assert_served_in_order(
    sim: Simulation, sheet: Datasheet, payloads: list[dict[str, Any]], started_ms: int
) -> dict[str, int]:
    """Every reported value is one the simulator served while the gateway ran, and each
    tag's values come in the order they were served. The gateway's `ts` does not pick the
    tick: on a busy machine a poll's timestamp and its register read can be far apart,
    while a decoding fault (word order, scale, type) gives a value never served at all.
    A value the gateway marks other than `good` (a read that timed out on a starved loop)
    is not compared; the caller checks that every tag was compared. Returns how many values
    of each tag were compared."""
    device = str(sheet.device)
    samples = sim.truth.samples(device)
    # the tick being served when the gateway started, and every later one
    first = max(0, bisect.bisect_right(samples, started_ms, key=lambda s: s[0]) - 1)
    served = samples[first:]
    assert served, f"{device}: the simulator recorded no tick"
    cursor: dict[str, int] = {}  # per tag: the earliest tick its next value may come from
    compared: dict[str, int] = {}
    for payload in payloads:
        quality = payload.get("quality") or {}
        for name, value in payload["metrics"].items():
            if quality.get(name, "good") != "good":
                continue
            tolerance = sheet.tag(name).tolerance or 0.0
            start = cursor.get(name, 0)
            tick = next(
                (
                    i
                    for i in range(start, len(served))
                    if matches(value, served[i][1].get(name), tolerance)
                ),
                None,
            )
            assert tick is not None, (
                f"{device}.{name}: {value!r} (ts {payload['ts']}) is no value the simulator "
                f"served from tick {start} of {len(served)} on; near its ts: "
                f"{[sim.truth.value_at(device, name, payload['ts'] + d) for d in (-150, 0)]!r} "
                f"({sheet.tag(name).modbus})"
            )
            cursor[name] = tick
            compared[name] = compared.get(name, 0) + 1
    return compared


def gateway_config(
    datasheet: Datasheet,
    url: str,
    state: Path,
    *,
    poll_s: float = 0.2,
    heartbeat_s: float = 30.0,
    **updates: Any,
) -> GatewayConfig:
    """A reference gateway config for one simulated device, polling fast."""
    config = GatewayConfig.from_datasheet(
        datasheet, broker_url=url, tenant=datasheet.student, buffer_path=state / "buffer.db"
    )
    plc = config.sources["plc"]
    assert isinstance(plc, ModbusSourceConfig)
    sources = {
        "plc": plc.model_copy(
            update={"poll_interval_s": poll_s, "timeout_s": 1.0, "reconnect_max_s": 1.0}
        )
    }
    return config.model_copy(update={"sources": sources, "heartbeat_s": heartbeat_s, **updates})


class Listener:
    """Subscribes to iiot/# and keeps every message (reconnects by itself)."""

    def __init__(self, url: str, **options: Any) -> None:
        self.client = MqttClient(
            url, client_id="gw-test-listener", reconnect_max_delay=0.5, **options
        )
        self.messages: list[MqttMessage] = []
        self.online = asyncio.Event()  # set once subscribed, cleared while disconnected
        self.client.on_connection_change(
            lambda up: self.online.set() if up else self.online.clear()
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        await self.client.connect()
        await self.client.subscribe("iiot/#", qos=1)
        self.online.set()
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.disconnect()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _collect(self) -> None:
        async for message in self.client.messages():
            self.messages.append(message)

    def payloads(self, kind: str, device: str | None = None) -> list[dict[str, Any]]:
        out = []
        for message in self.messages:
            parts = message.topic.split("/")
            if "/".join(parts[3:]) == kind and (device is None or parts[2] == device):
                out.append(json.loads(message.payload))
        return out

    async def wait_for(
        self, predicate: Callable[[], bool], within_s: float = 15.0, what: str = "condition"
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {within_s} s waiting for {what}")
            await asyncio.sleep(0.05)


class TcpPath:
    """A TCP forwarder on 127.0.0.1 that a test can cut (connections reset, new ones
    refused) and restore on the same port: the gateway's view of an unreachable broker."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))
