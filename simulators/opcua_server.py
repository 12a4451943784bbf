"""The simulators' OPC UA server: every plant as an object, one state with Modbus.

The only module (with its helpers in `simulators/opcua/`) that uses asyncua server-side;
no asyncua type leaves it. See docs/opcua.md for the address space, security and the
session log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server

from iiotlab.datasheet import Datasheet, OpcuaTagNode
from iiotlab.lifecycle import Service
from simulators.base import PlantRuntime, Value
from simulators.opcua import monitoring
from simulators.opcua.address_space import PlantAddressSpace
from simulators.opcua.layout import PlantLayout, plan_plant
from simulators.opcua.security import (
    APPLICATION_URI,
    OpcuaSecurity,
    PlantUserManager,
    ensure_certificate,
    identity_tokens,
    mode_name,
    policy_short_name,
    policy_types,
)
from simulators.opcua.sessions import OpcuaSessionRecord, PlantInternalServer, SessionLog

__all__ = ["OpcuaPlantServer", "OpcuaSecurity", "OpcuaSessionRecord"]

_logger = logging.getLogger(__name__)

URL_PATH = "/iiotlab/"
SERVER_NAME = "iiotlab simulators"
PLANT_METHODS: tuple[str, ...] = ("Start", "Stop", "ResetFault")


class OpcuaPlantServer(Service):
    """OPC UA server over plant runtimes; `async with` or start()/stop()."""

    def __init__(
        self,
        plants: Sequence[tuple[PlantRuntime, Datasheet]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: OpcuaSecurity = OpcuaSecurity(),
        cert_dir: Path,
    ) -> None:
        self._plants = list(plants)
        self.host = host
        self.port = port
        self.security = security
        self.cert_dir = Path(cert_dir)
        self.server_certificate = self.cert_dir / "opcua_server_cert.der"
        self.sessions: list[OpcuaSessionRecord] = []
        self.rejected_sessions: list[OpcuaSessionRecord] = []
        self._log = SessionLog(security, self.sessions, self.rejected_sessions)
        self._log.channel_lookup = self._channel_of
        self._space = PlantAddressSpace()
        self._layouts: dict[str, PlantLayout] = {}
        self._namespace_indexes: dict[str, int] = {}
        self._server: Server | None = None
        self._pending: dict[str, tuple[Mapping[str, Value], int]] = {}
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._listening_to: set[int] = set()

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"opc.tcp://{shown}:{self.port}{URL_PATH}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Build the address space and listen; a port once bound is kept for later starts."""
        if self._server is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()  # bound to this loop; a later start may run in another
        server = await self._build_server()
        try:
            await server.start()
        except OSError as error:
            raise OSError(
                f"OPC UA server cannot listen on {self.host}:{self.port}: {error}"
            ) from None
        self._server = server
        if server.bserver is not None:
            self.port = server.bserver.port
        self._fix_endpoint_urls(server)
        self._listen()
        self._pump = asyncio.create_task(self._pump_snapshots(), name="opcua-snapshot-pump")
        _logger.info("OPC UA server listening on %s", self.url)

    async def stop(self) -> None:
        """Close every session, stop listening; safe to call twice."""
        server, self._server = self._server, None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        if server is None:
            return
        try:
            await self._log.close_all()
        finally:
            await server.stop()

    async def restart(self, downtime: float = 0.0) -> None:
        """Drop every connection and session, wait downtime seconds, listen on the same port.

        The address space stays (values keep following the plant); clients must reconnect
        and re-create their subscriptions, as after a real server restart.
        """
        server = self._server
        if server is None or server.bserver is None:
            await self.start()
            return
        await server.bserver.stop()
        await self._log.close_all()
        if downtime > 0:
            await asyncio.sleep(downtime)
        await server.bserver.start()
        _logger.info("OPC UA server restarted on %s", self.url)

    def namespace_index(self, namespace_uri: str) -> int:
        """The namespace index the running server gave a datasheet's namespace_uri."""
        return self._namespace_indexes[namespace_uri]

    def served_datasheet(self, device: str) -> Datasheet:
        """The device's datasheet as served: endpoint, object and node ids filled in."""
        for runtime, datasheet in self._plants:
            if runtime.device == device:
                return self._served(datasheet, self._layouts.get(device))
        raise KeyError(device)

    async def _build_server(self) -> Server:
        monitoring.install()
        iserver = PlantInternalServer(PlantUserManager(self.security), self._log, self._space)
        server = Server(iserver=iserver)
        await server.init()
        await server.set_application_uri(APPLICATION_URI)
        server.set_server_name(SERVER_NAME)
        server.product_uri = "urn:iiotlab"
        server.manufacturer_name = "iiotlab"
        server.set_endpoint(self.url)
        server.set_security_policy(policy_types(self.security))
        server.set_identity_tokens(identity_tokens(self.security))
        if self.security.needs_certificate:
            files = await ensure_certificate(self.cert_dir)
            self.server_certificate = files.certificate
            await server.load_certificate(str(files.certificate))
            await server.load_private_key(str(files.private_key))
        self._space.attach(server)
        for runtime, datasheet in self._plants:
            uri = datasheet.opcua.namespace_uri
            index = await server.register_namespace(uri)
            self._namespace_indexes[uri] = index
            layout = plan_plant(
                runtime.device, runtime.tags, PLANT_METHODS, datasheet, namespace_index=index
            )
            self._layouts[runtime.device] = layout
            await self._space.add_plant(runtime, layout)
        return server

    def _fix_endpoint_urls(self, server: Server) -> None:
        """Endpoints were described before the port was known; advertise the real one."""
        server.set_endpoint(self.url)
        for endpoint in server.iserver.endpoints:
            endpoint.EndpointUrl = self.url
            endpoint.Server.DiscoveryUrls = [self.url]

    def _channel_of(self, session: InternalSession) -> tuple[str, str] | None:
        """The policy and mode of the secure channel carrying a session.

        asyncua keeps the negotiated policy on the connection of the session's UaProcessor
        (BinaryServer.clients[i].processor._connection.security_policy): a session does not
        know its channel, so look the channel up by session.
        """
        server = self._server
        if server is None or server.bserver is None:
            return None
        for protocol in server.bserver.clients:
            processor: Any = protocol.processor
            if processor is None or processor.session is not session:
                continue
            policy = processor._connection.security_policy
            return policy_short_name(policy.URI), mode_name(policy.Mode)
        return None

    def _listen(self) -> None:
        for runtime, _ in self._plants:
            if id(runtime) not in self._listening_to:
                self._listening_to.add(id(runtime))
                runtime.add_listener(self._listener_for(runtime.device))

    def _listener_for(self, device: str) -> Any:
        def on_tick(values: Mapping[str, Value], ts_ms: int) -> None:
            self._pending[device] = (values, ts_ms)
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            else:
                loop.call_soon_threadsafe(self._wake.set)

        return on_tick

    async def _pump_snapshots(self) -> None:
        """Copy the latest tick of each plant into the address space (one state)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for device, (values, ts_ms) in pending.items():
                try:
                    await self._space.publish(device, values, ts_ms)
                except Exception:  # a bad value must not stop the updates of the others
                    _logger.exception("publishing %s to OPC UA failed", device)

    def _served(self, datasheet: Datasheet, layout: PlantLayout | None) -> Datasheet:
        opcua = datasheet.opcua.model_copy(
            update={
                "endpoint": self.url,
                "security": list(self.security.policies),
                "object_node_id": layout.object_id.to_string() if layout else None,
            }
        )
        if layout is None:
            return datasheet.model_copy(update={"opcua": opcua})
        nodes = {v.definition.name: v for v in layout.variables}
        tags = []
        for tag in datasheet.tags:
            variable = nodes.get(tag.name)
            if variable is not None:
                node = OpcuaTagNode(
                    node_id=variable.node_id.to_string(), browse_name=variable.browse_name
                )
                tag = tag.model_copy(update={"opcua": node})
            tags.append(tag)
        return datasheet.model_copy(update={"opcua": opcua, "tags": tags})
