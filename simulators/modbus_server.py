"""Modbus TCP server for simulated plants: the only module that touches pymodbus' server.

Each plant is a unit id. Requests are answered from the plant's live snapshot, encoded per
its datasheet. Supported: function codes 1-6, 15, 16, 23 and 43 / MEI 14 (the datasheet's
vendor data). Exceptions: 01 any other function, 02 an address no tag covers (also for a
gap inside a table), 03 a bad value or a write to a read-only tag, 04 the plant refused a
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
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.transaction import TransactionManager

from iiotlab import __version__
from iiotlab.datasheet import Datasheet
from iiotlab.errors import IiotlabError, RegisterCodecError
from iiotlab.lifecycle import Service
from simulators.base import InterlockError, PlantRuntime, TagAccessError, Value
from simulators.register_map import ReadOnlyError, RegisterMap, UnmappedAddressError

logger = logging.getLogger(__name__)

# The read/write functions served; every other code except 43 / MEI 14 answers exception 01.
_FUNCTION_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"}
_FUNCTION_TABLE.update({code: "holding" for code in (3, 6, 16, 23)})
_ENCAPSULATED_INTERFACE = 0x2B
_READ_DEVICE_IDENTIFICATION = 0x0E
_CONFORMITY = 0x82  # regular identification: stream and individual access
_IDENTIFICATION_ROOM = 253 - 7  # a PDU's 253 bytes less function, MEI type and header
_PEER: contextvars.ContextVar[str] = contextvars.ContextVar("modbus_peer", default="unknown")


def _identification_objects(datasheet: Datasheet) -> dict[int, bytes]:
    """Object id -> ASCII value (objects 0x00-0x05 of Read Device Identification)."""
    identity = datasheet.identity
    if identity is None:  # a hand-made datasheet: still say what answers, never "Pymodbus"
        values = ["iiotlab", f"{datasheet.plant}-simulator", f"V{__version__}"]
    else:
        values = [identity.vendor_name, identity.product_code, identity.revision]
        values += [identity.vendor_url or "", identity.product_name or ""]
        values += [identity.model_name or ""]
    return {oid: value.encode("ascii", "replace") for oid, value in enumerate(values) if value}


@dataclass
class _Device:
    runtime: PlantRuntime
    register_map: RegisterMap
    identification: dict[int, bytes]
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

    def identification(self, device_id: int) -> dict[int, bytes] | None:
        return self._owner.identification(device_id)


class _RefusedRequest(ModbusPDU):
    """A request answered with an exception only, echoing its function code (01 by default)."""

    def __init__(self, function: int, exception: ExcCodes = ExcCodes.ILLEGAL_FUNCTION) -> None:
        super().__init__()
        self.function_code = function
        self.exception = exception

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, self.exception)


class _DeviceIdentificationResponse(ModbusPDU):
    function_code = _ENCAPSULATED_INTERFACE

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload

    def encode(self) -> bytes:
        return self.payload


class _ReadDeviceIdentificationRequest(ModbusPDU):
    """43 / MEI 14, answered per unit from its datasheet (pymodbus' own reads one global)."""

    function_code = _ENCAPSULATED_INTERFACE
    sub_function_code = _READ_DEVICE_IDENTIFICATION

    def __init__(self, read_code: int, object_id: int) -> None:
        super().__init__()
        self.read_code = read_code
        self.object_id = object_id

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        assert isinstance(context, _PlantContext)
        objects = context.identification(device_id)
        if objects is None:
            return ExceptionResponse(self.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
        return _identification_reply(objects, self.read_code, self.object_id)


def _identification_reply(
    objects: Mapping[int, bytes], read_code: int, object_id: int
) -> ModbusPDU:
    """Read codes 1 basic, 2 regular, 3 extended (stream from object_id), 4 one object."""
    if read_code not in (1, 2, 3, 4):
        return ExceptionResponse(_ENCAPSULATED_INTERFACE, ExcCodes.ILLEGAL_VALUE)
    if read_code == 4:
        if object_id not in objects:
            return ExceptionResponse(_ENCAPSULATED_INTERFACE, ExcCodes.ILLEGAL_ADDRESS)
        chosen = [object_id]
    else:
        category = [oid for oid in sorted(objects) if read_code != 1 or oid <= 0x02]
        start = object_id if object_id in category else 0  # unknown object: from the start
        chosen = [oid for oid in category if oid >= start]
    body, more_follows, next_object, count = b"", 0x00, 0x00, 0
    for oid in chosen:
        item = bytes((oid, len(objects[oid]))) + objects[oid]
        if len(body) + len(item) > _IDENTIFICATION_ROOM:
            more_follows, next_object = 0xFF, oid
            break
        body += item
        count += 1
    header = (_READ_DEVICE_IDENTIFICATION, read_code, _CONFORMITY, more_follows, next_object)
    return _DeviceIdentificationResponse(bytes((*header, count)) + body)


class _PlcDecoder(DecodePDU):
    """Decodes only what the simulated PLC implements; the rest becomes exception 01.

    pymodbus' server would otherwise answer diagnostics (08, 11, 12, 17 as "Pymodbus"),
    file records, mask write and FIFO reads, and 04 for codes 0x81 and above.
    """

    def __init__(self) -> None:
        super().__init__(is_server=True)

    def decode(self, frame: bytes) -> ModbusPDU | None:
        if not frame:
            return None
        function = frame[0]
        if function in _FUNCTION_TABLE:
            return super().decode(frame)  # a malformed request: None, answered 01 below
        if function == _ENCAPSULATED_INTERFACE and frame[1:2] == bytes((0x0E,)):
            if len(frame) < 4:
                return _RefusedRequest(function, ExcCodes.ILLEGAL_VALUE)
            return _ReadDeviceIdentificationRequest(read_code=frame[2], object_id=frame[3])
        return _RefusedRequest(function)


class _PeerHandler(ServerRequestHandler):  # type: ignore[misc]
    """Remembers the client address so writes are logged with who made them."""

    def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
        # A request that does not decode (a supported code, malformed): pymodbus answers
        # with function code 0x80; real devices echo the request's code with the high bit
        # set (0x03 -> 0x83), so we do too.
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
    def __init__(self, context: _PlantContext, address: tuple[str, int]) -> None:
        super().__init__(context, address=address)
        self.decoder = _PlcDecoder()

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
            self._devices[unit] = _Device(
                runtime, RegisterMap(datasheet), _identification_objects(datasheet)
            )
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
                    device.runtime, RegisterMap(datasheet), _identification_objects(datasheet)
                )
                return
        raise IiotlabError(f"no served device matches datasheet of {datasheet.plant}")

    def identification(self, unit: int) -> dict[int, bytes] | None:
        device = self._devices.get(unit)
        return None if device is None else device.identification

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
