"""sec-04: the grader's Modbus TCP tap and the plant network's traffic (benign and hostile).

`ModbusTap` is a forwarding proxy in front of the PLC: every client of the plant network
(the grader's HMI poller, its engineering workstation, its attackers) connects to it, and
it copies every request and response frame, as one JSON line, to a feed that the
submission (an intrusion detector) reads at `IIOTLAB_TAP_URL` (`tcp://127.0.0.1:PORT`).
A reader that connects late first gets every earlier line (the feed's backlog).

Clients are told apart by their source address: each one binds its own loopback address
(127.0.0.x, x per student), as machines of a plant network have their own IP. The feed's
first line is the site's asset inventory (which address is the HMI, which the engineering
workstation, the PLC's unit id).

The traffic is one schedule per student (`tap_schedule`): the HMI reads every tag every
second from the start; the engineering workstation writes back a setpoint twice (legit
writes); four attacks, each from its own unknown address, in shuffled slots with jitter:
an unauthorised write, an address scan, a unit-id scan and a function-code scan. The
probe of the `intrusion_detection` check kind plays it once (`ModbusTap.play`) and records
each episode's start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Self

from grader.probes.modbus_client import (
    READ_FUNCTIONS,
    ModbusLinkError,
    RawModbusClient,
    read_pdu,
    write_registers_pdu,
    write_single_pdu,
)
from iiotlab.datasheet import Datasheet, ModbusTagAddress
from iiotlab.registers import RegisterFormat
from iiotlab.variants import variant_random
from simulators.runtime import now_ms

AttackType = Literal["unauthorised_write", "address_scan", "unit_scan", "function_scan"]
ATTACK_TYPES: tuple[AttackType, ...] = (
    "unauthorised_write",
    "address_scan",
    "unit_scan",
    "function_scan",
)
HMI_PERIOD_S = 1.0
FIRST_SLOT_S = 6.0  # seconds after the gateway starts
SLOT_S = 3.0
JITTER_S = 0.8
LEGIT_WRITES_S = (4.5, 13.5)
SCAN_ADDRESSES = 40  # address scan: this many single-register reads
SCAN_UNITS = 12  # unit scan: this many unit ids
SCAN_FUNCTIONS = (7, 8, 11, 12, 17, 20, 24, 43)  # not served by a plain PLC
SCAN_REPLY_S = 0.4  # a scanner does not wait long for an answer


@dataclass(frozen=True)
class Episode:
    """One attack of the schedule and, once played, when it ran."""

    type: AttackType
    client: str  # the attacker's address
    at_s: float  # planned start, seconds after the gateway started
    start_ms: int = 0
    end_ms: int = 0
    requests: int = 0


@dataclass(frozen=True)
class TapSchedule:
    hmi: str
    engineering: str
    attacks: tuple[Episode, ...]
    legit_writes_s: tuple[float, ...]

    @property
    def end_s(self) -> float:
        return max(e.at_s for e in self.attacks) + 3.0


def tap_schedule(seed: int) -> TapSchedule:
    """The student's network: addresses, attack order and times (repeatable)."""
    rng = variant_random(seed, "ids-traffic")
    hosts = rng.sample(range(100, 250), 4)
    order = list(ATTACK_TYPES)
    rng.shuffle(order)
    attacks = tuple(
        Episode(kind, f"127.0.0.{hosts[i]}", FIRST_SLOT_S + i * SLOT_S + rng.uniform(0, JITTER_S))
        for i, kind in enumerate(order)
    )
    return TapSchedule(
        hmi=f"127.0.0.{rng.randrange(10, 50)}",
        engineering=f"127.0.0.{rng.randrange(50, 90)}",
        attacks=attacks,
        legit_writes_s=tuple(t + rng.uniform(0, JITTER_S) for t in LEGIT_WRITES_S),
    )


def _words(address: ModbusTagAddress) -> int:
    """Registers (or bits) one read of the tag covers."""
    if address.table in ("coil", "discrete"):
        return 1
    return RegisterFormat(address.type, length=address.length or 1).count


def describe_frame(pdu: bytes, request: bool) -> dict[str, Any]:
    """What a reader of the feed gets besides the raw PDU: address, quantity or value."""
    if not pdu:
        return {}
    fc = pdu[0]
    out: dict[str, Any] = {"fc": fc & 0x7F}
    if not request:
        if fc & 0x80 and len(pdu) > 1:
            out["exception"] = pdu[1]
        return out
    if fc in (1, 2, 3, 4, 15, 16) and len(pdu) >= 5:
        out["address"], out["quantity"] = struct.unpack(">HH", pdu[1:5])
    elif fc in (5, 6) and len(pdu) >= 5:
        out["address"], out["value"] = struct.unpack(">HH", pdu[1:5])
    return out


class BoundModbusClient(RawModbusClient):
    """A raw Modbus client whose connections come from one loopback address."""

    def __init__(self, source: str, host: str, port: int, unit: int, timeout_s: float) -> None:
        super().__init__(host, port, unit, timeout_s=timeout_s)
        self.source = source

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=(self.source, 0)
                )
        except (OSError, TimeoutError) as exc:
            raise ModbusLinkError(f"cannot connect to {self.host}:{self.port}: {exc}") from None

    async def ask(self, pdu: bytes) -> str:
        """One request; the reply described, reconnecting first when the link dropped."""
        try:
            if not self.connected:
                await self.connect()
            return (await self.request(pdu)).describe()
        except ModbusLinkError as exc:
            return f"no reply ({exc})"


@dataclass
class _Feed:
    lines: list[bytes] = field(default_factory=list)
    readers: list[asyncio.StreamWriter] = field(default_factory=list)

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        self.lines.append(line)
        for writer in list(self.readers):
            if writer.is_closing():
                self.readers.remove(writer)
                continue
            writer.write(line)


class ModbusTap:
    """The tap proxy and its feed, on free loopback ports (an async context manager)."""

    def __init__(self, plc_host: str, plc_port: int, unit: int, schedule: TapSchedule) -> None:
        self.plc_host, self.plc_port, self.unit = plc_host, plc_port, unit
        self.schedule = schedule
        self.host = "127.0.0.1"
        self.port = 0
        self.feed_port = 0
        self.feed = _Feed()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = 0
        self._played: asyncio.Task[list[Episode]] | None = None
        self.legit_writes: list[dict[str, Any]] = []
        self.feed_readers_seen = 0

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.feed_port}"

    async def __aenter__(self) -> Self:
        self.feed.emit(
            {
                "type": "inventory",
                "ts": now_ms(),
                "plc": {"unit": self.unit},
                "hosts": [
                    {"ip": self.schedule.hmi, "role": "hmi", "may_write": False},
                    {"ip": self.schedule.engineering, "role": "engineering", "may_write": True},
                ],
            }
        )
        proxy = await asyncio.start_server(self._client, self.host, 0)
        feed = await asyncio.start_server(self._reader, self.host, 0)
        self._servers = [proxy, feed]
        self.port = proxy.sockets[0].getsockname()[1]
        self.feed_port = feed.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._played is not None:
            self._played.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._played
        for server in self._servers:
            server.close()
        for writer in self.feed.readers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    # -- the feed -------------------------------------------------------------------

    async def _reader(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.feed_readers_seen += 1
        for line in self.feed.lines:
            writer.write(line)
        self.feed.readers.append(writer)
        with contextlib.suppress(OSError, ConnectionError):
            await reader.read()  # until the reader goes away
        with contextlib.suppress(ValueError):
            self.feed.readers.remove(writer)
        writer.close()

    # -- the proxy ------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        conn = self._connections
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}" if peer else "?"
        try:
            up_reader, up_writer = await asyncio.open_connection(self.plc_host, self.plc_port)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, conn, client, request=True)),
            asyncio.create_task(self._pump(up_reader, writer, conn, client, request=False)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: int,
        client: str,
        *,
        request: bool,
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            while True:
                header = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(max(length - 1, 0))
                self.feed.emit(
                    {
                        "type": "frame",
                        "ts": now_ms(),
                        "conn": conn,
                        "client": client,
                        "dir": "request" if request else "response",
                        "tid": tid,
                        "unit": unit,
                        **describe_frame(pdu, request),
                        "pdu": pdu.hex(),
                    }
                )
                writer.write(header + pdu)
                await writer.drain()

    # -- the traffic ----------------------------------------------------------------

    def play(self, sheet: Datasheet, started_monotonic: float) -> asyncio.Task[list[Episode]]:
        """Play the schedule once (every caller shares the same task)."""
        if self._played is None:
            self._played = asyncio.create_task(self._play(sheet, started_monotonic))
        return self._played

    def _bound(self, source: str, timeout_s: float = 2.0) -> BoundModbusClient:
        return BoundModbusClient(source, self.host, self.port, self.unit, timeout_s)

    async def _play(self, sheet: Datasheet, started: float) -> list[Episode]:
        hmi = asyncio.create_task(self._hmi(sheet, started))
        legit = asyncio.create_task(self._engineering(sheet, started))
        try:
            episodes = [await self._attack(sheet, started, e) for e in self.schedule.attacks]
            await legit
        finally:
            hmi.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hmi
        return episodes

    @staticmethod
    async def _sleep_until(started: float, at_s: float) -> None:
        delay = started + at_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _hmi(self, sheet: Datasheet, started: float) -> None:
        reads = sorted(
            {
                (READ_FUNCTIONS[t.modbus.table], t.modbus.address, _words(t.modbus))
                for t in sheet.tags
                if t.modbus is not None
            }
        )
        client = self._bound(self.schedule.hmi)
        tick = 0
        try:
            while True:
                await self._sleep_until(started, 0.5 + tick * HMI_PERIOD_S)
                for function, address, count in reads:
                    await client.ask(read_pdu(function, address, count))
                tick += 1
        finally:
            await client.close()

    def _setpoint(self, sheet: Datasheet) -> tuple[int, int]:
        """A writable holding-register tag: (address, words)."""
        for tag in sheet.tags:
            if tag.modbus is not None and tag.modbus.table == "holding" and "w" in tag.access:
                return tag.modbus.address, _words(tag.modbus)
        raise ModbusLinkError("the datasheet has no writable holding register")

    async def _write_back(self, client: BoundModbusClient, address: int, words: int) -> str:
        """Read the register(s), write the same words back (FC 6 for one word, else 16)."""
        if not client.connected:
            await client.connect()
        current = (await client.request(read_pdu(3, address, words))).registers()
        if words == 1:
            return await client.ask(write_single_pdu(6, address, current[0]))
        return await client.ask(write_registers_pdu(address, current))

    async def _engineering(self, sheet: Datasheet, started: float) -> None:
        address, words = self._setpoint(sheet)
        client = self._bound(self.schedule.engineering)
        try:
            for at_s in self.schedule.legit_writes_s:
                await self._sleep_until(started, at_s)
                ts = now_ms()
                try:
                    reply = await self._write_back(client, address, words)
                except ModbusLinkError as exc:
                    reply = f"no reply ({exc})"
                self.legit_writes.append(
                    {
                        "ts": ts,
                        "client": self.schedule.engineering,
                        "address": address,
                        "reply": reply,
                    }
                )
        finally:
            await client.close()

    async def _attack(self, sheet: Datasheet, started: float, episode: Episode) -> Episode:
        await self._sleep_until(started, episode.at_s)
        start = now_ms()
        client = self._bound(episode.client, SCAN_REPLY_S)
        requests = 0
        try:
            if episode.type == "unauthorised_write":
                client.timeout_s = 2.0
                address, words = self._setpoint(sheet)
                # the value written is the value read: the attack changes nothing in the plant
                with contextlib.suppress(ModbusLinkError):
                    await self._write_back(client, address, words)
                    first = (await client.request(read_pdu(3, address, 1))).registers()[0]
                    await client.ask(write_single_pdu(6, address, first))
                requests = 4
            elif episode.type == "address_scan":
                base = min(t.modbus.address for t in sheet.tags if t.modbus is not None)
                base = max(base - SCAN_ADDRESSES // 2, 0)
                for address in range(base, base + SCAN_ADDRESSES):
                    await client.ask(read_pdu(3, address, 1))
                    requests += 1
            elif episode.type == "unit_scan":
                units = [u for u in range(1, 248) if u != self.unit][: SCAN_UNITS - 1]
                for unit in [*units, self.unit]:
                    client.unit = unit
                    await client.ask(read_pdu(3, 0, 1))
                    requests += 1
            else:
                for function in SCAN_FUNCTIONS:
                    await client.ask(bytes([function]) + b"\x00\x00\x00\x01")
                    requests += 1
        finally:
            await client.close()
        return Episode(episode.type, episode.client, episode.at_s, start, now_ms(), requests)


def episode_detail(episode: Episode) -> dict[str, Any]:
    return asdict(episode)
