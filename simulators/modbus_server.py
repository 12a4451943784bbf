"""Modbus TCP server for simulated plants: the only module that touches pymodbus' server.

Each plant is a unit id. Requests are answered from the plant's live snapshot, encoded per
its datasheet. Exceptions: 01 unsupported function, 02 an address no tag covers (also for
a gap inside a table), 03 a bad value or a write to a read-only tag, 04 the plant refused a
command (interlock), 0B a unit id nobody serves. A bad request never stops the server.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.transaction import TransactionManager

from iiotlab.datasheet import Datasheet
from iiotlab.errors import IiotlabError, RegisterCodecError
from iiotlab.lifecycle import Service
from simulators.base import InterlockError, PlantRuntime, TagAccessError, Value
from simulators.register_map import ReadOnlyError, RegisterMap, UnmappedAddressError

logger = logging.getLogger(__name__)

_FUNCTION_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"}
_FUNCTION_TABLE.update({code: "holding" for code in (3, 6, 16, 22, 23)})
_PEER: contextvars.ContextVar[str] = contextvars.ContextVar("modbus_peer", default="unknown")


@dataclass
class _Device:
    runtime: PlantRuntime
    register_map: RegisterMap
    cached_snapshot: Mapping[str, Value] | None = None
    cached_tables: dict[str, dict[int, int | bool]] = field(default_factory=dict)

    def tables(self) -> dict[str, dict[int, int | bool]]:
        snapshot = self.runtime.snapshot()
        if snapshot is not self.cached_snapshot:  # encode once per tick, lazily
            self.cached_tables = self.register_map.words(snapshot)
            self.cached_snapshot = snapshot
        return self.cached_tables


class _PlantContext(ModbusServerContext):
    """Hands every request to ModbusPlcServer (bypasses pymodbus' deprecated datastores)."""

    def __init__(self, owner: ModbusPlcServer) -> None:  # no super(): nothing to store
        self.old_simulator = True
        self.simdevices = []
        self._owner = owner

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> Any:
        return self._owner.read(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Any
    ) -> Any:
        return self._owner.write(device_id, func_code, address, list(values), _PEER.get())

    def device_ids(self) -> list[int]:
        return self._owner.unit_ids()


class _PeerHandler(ServerRequestHandler):  # type: ignore[misc]
    """Remembers the client address so writes are logged with who made them."""

    def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
        # pymodbus answers an unknown function with function code 0x80; real devices echo
        # the request's code with the high bit set (0x41 -> 0xC1), so we do too.
        try:
            used: int = TransactionManager.callback_data(self, data, addr)
        except ModbusIOException as exc:
            function = data[7] if len(data) > 7 else 0
            response = ExceptionResponse(
                function,
                ExcCodes.ILLEGAL_FUNCTION,
                device_id=exc.dev_id or 0,
                transaction=exc.transaction_id or 0,
            )
            self.server_send(response, addr)  # type: ignore[no-untyped-call]
            return len(data)
        if self.last_pdu:
            self.loop.call_soon(self.handle_later)
        return used

    async def handle_request(self) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        _PEER.set(f"modbus:{peer[0]}:{peer[1]}" if peer else "modbus:unknown")
        await super().handle_request()  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):  # type: ignore[misc]
    def callback_new_connection(self) -> ServerRequestHandler:
        return _PeerHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )


class ModbusPlcServer(Service):
    """Serves plants over Modbus TCP, one unit id per plant (from its datasheet)."""

    def __init__(
        self,
        plants: Sequence[tuple[PlantRuntime, Datasheet]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self._devices: dict[int, _Device] = {}
        for runtime, datasheet in plants:
            unit = datasheet.modbus.unit_id
            if unit in self._devices:
                raise IiotlabError(f"two plants share Modbus unit id {unit}")
            self._devices[unit] = _Device(runtime, RegisterMap(datasheet))
        self._server: _TcpServer | None = None
        self._relisten: asyncio.Task[None] | None = None
        self.link_up = False

    def unit_ids(self) -> list[int]:
        return list(self._devices)

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = _TcpServer(_PlantContext(self), address=(self.host, self.port))
        await self._listen()

    async def _listen(self) -> None:
        assert self._server is not None
        self._server.init_setup_connect_listen(self.host, self.port)
        if not await self._server.listen():
            raise IiotlabError(
                f"Modbus server cannot listen on {self.host}:{self.port}; choose a free port "
                "(0 picks one)"
            )
        sockets = getattr(self._server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self.link_up = True
        logger.info("Modbus TCP serving units %s on %s:%s", self.unit_ids(), self.host, self.port)

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
        self.link_up = False

    async def stop(self) -> None:
        if self._relisten is not None:
            self._relisten.cancel()
            await asyncio.gather(self._relisten, return_exceptions=True)
            self._relisten = None
        server, self._server = self._server, None
        if server is not None:
            self.link_up = False
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def link_down(self, duration_s: float) -> None:
        """Drop every connection and refuse new ones for duration_s, then listen again."""
        if self._server is None:
            return
        if self._relisten is not None:
            self._relisten.cancel()
        self._close_listener()
        self._relisten = asyncio.create_task(self._listen_after(duration_s))

    async def _listen_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if self._server is not None:
            await self._listen()
        self._relisten = None

    def remap(self, datasheet: Datasheet) -> None:
        """Serve a device with a new register map (scenario: register map change)."""
        for unit, device in list(self._devices.items()):
            if device.runtime.device == datasheet.device or (
                datasheet.device is None and device.runtime.plant_kind == datasheet.plant
            ):
                del self._devices[unit]
                self._devices[datasheet.modbus.unit_id] = _Device(
                    device.runtime, RegisterMap(datasheet)
                )
                return
        raise IiotlabError(f"no served device matches datasheet of {datasheet.plant}")

    def read(self, unit: int, function: int, address: int, count: int) -> Any:
        device = self._devices.get(unit)
        if device is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _FUNCTION_TABLE.get(function)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            device.register_map.check(table, address, count)
        except UnmappedAddressError:
            return ExcCodes.ILLEGAL_ADDRESS
        words = device.tables()[table]
        return [words[a] for a in range(address, address + count)]

    def write(self, unit: int, function: int, address: int, values: list[Any], source: str) -> Any:
        device = self._devices.get(unit)
        if device is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _FUNCTION_TABLE.get(function)
        if table not in ("coil", "holding"):
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            writes = device.register_map.writes(table, address, values, device.tables()[table])
            for tag, value in writes:
                device.runtime.write(tag, value, source)
        except UnmappedAddressError:
            return ExcCodes.ILLEGAL_ADDRESS
        except InterlockError:
            return ExcCodes.DEVICE_FAILURE
        except (ReadOnlyError, TagAccessError, RegisterCodecError, IiotlabError) as exc:
            logger.info("refused Modbus write from %s: %s", source, exc)
            return ExcCodes.ILLEGAL_VALUE
        return None
