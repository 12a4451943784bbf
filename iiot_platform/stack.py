"""`iiotlab up`: broker, simulator, platform with UI and (optionally) reference gateways,
started in order, reported once ready, stopped in reverse order."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iiot_platform.app import create_app
from iiot_platform.registry import DeviceRegistration
from iiot_platform.service import PlatformService
from iiot_platform.settings import ApiToken, PlatformSettings, limits_from_env
from iiotlab.certs import TlsFiles
from iiotlab.lifecycle import Service
from iiotlab.mqtt import Broker, BrokerConfig, BrokerUser, EmbeddedBroker

_log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0  # uvicorn waits for open responses; past this the server is cancelled
ALL_PLANTS = ("tank", "boiler", "packaging", "compressor", "energy")


@dataclass(frozen=True)
class StackConfig:
    plants: tuple[str, ...] = ALL_PLANTS
    tenant: str = "demo"
    host: str = "127.0.0.1"
    port: int = 8000
    broker_url: str | None = None  # None: run the embedded broker
    mqtt_port: int = 1883
    modbus_port: int = 5020
    opcua_port: int = 4840
    enable_opcua: bool = True
    data_dir: Path = field(default_factory=lambda: Path.home() / ".iiotlab")
    with_gateway: bool = False
    auth: bool = False
    tls: TlsFiles | None = None
    tls_port: int = 8883
    lab: str = "sandbox"
    course_secret: str | None = None


class PlatformServer(Service):
    """The platform app under uvicorn on an already bound socket (port 0 works)."""

    def __init__(self, settings: PlatformSettings, host: str, port: int) -> None:
        self.app = create_app(settings)
        self._host, self._port = host, port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self.cancelled_on_stop = False  # open responses kept it past STOP_TIMEOUT_S

    async def start(self) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the CLI handles signals
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="uvicorn")
        while not self._server.started:
            if self._task.done():
                sock.close()
                await self._task  # raises why it could not start
                raise RuntimeError("the platform stopped while starting (see the log)")
            await asyncio.sleep(0.02)

    @property
    def service(self) -> PlatformService:
        service: PlatformService = self.app.state.service
        return service

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        service = getattr(self.app.state, "service", None)
        if service is not None:  # uvicorn waits for open responses: end the event streams
            service.events.close()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
        except TimeoutError:
            self.cancelled_on_stop = True
            _log.warning(
                "the platform's server did not stop within %g s: cancelled", STOP_TIMEOUT_S
            )
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class LabStack(Service):
    """Everything `iiotlab up` runs; `info()` says where it is and how to log in."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker: Broker | None = None
        self.platform: PlatformServer | None = None
        self.simulation: Any = None
        self.gateways: list[Any] = []
        self.gateway_errors: dict[str, str] = {}
        self.broker_users: tuple[BrokerUser, ...] = ()
        self.tokens: tuple[ApiToken, ...] = ()
        self._started: list[Any] = []

    async def start(self) -> None:
        try:
            self._make_credentials()
            await self._start_broker()
            await self._start_platform()
            await self._start_simulation()
            if self.config.with_gateway:
                await self._start_gateways()
        except BaseException:
            await self.stop()
            raise

    def _make_credentials(self) -> None:
        if not self.config.auth:
            return
        tenant = self.config.tenant
        self.broker_users = (
            BrokerUser("platform", secrets.token_urlsafe(12), None),
            BrokerUser(tenant, secrets.token_urlsafe(12), tenant),
        )
        self.tokens = (
            ApiToken("iiot_" + secrets.token_urlsafe(18), "admin", None, "admin"),
            ApiToken("iiot_" + secrets.token_urlsafe(18), "instructor", None, "instructor"),
            ApiToken("iiot_" + secrets.token_urlsafe(18), "student", tenant, tenant),
        )

    async def _start_broker(self) -> None:
        if self.config.broker_url is not None:
            return
        broker = EmbeddedBroker(
            BrokerConfig(
                host=self.config.host,
                port=self.config.mqtt_port,
                users=self.broker_users,
                tls=self.config.tls,
                tls_port=self.config.tls_port if self.config.tls else None,
            )
        )
        await broker.start()
        self.broker = broker
        self._started.append(broker)

    def broker_url_for(self, user: BrokerUser | None) -> str:
        if self.broker is None:
            return self.config.broker_url or ""
        return self.broker.url_for(user)

    async def _start_platform(self) -> None:
        settings = PlatformSettings(
            broker_url=self.broker_url_for(self.broker_users[0] if self.broker_users else None),
            data_dir=self.config.data_dir / "platform",
            auth_enabled=self.config.auth,
            tokens=self.tokens,
            default_tenant=self.config.tenant,
            **limits_from_env(),  # type: ignore[arg-type]
        )
        platform = PlatformServer(settings, self.config.host, self.config.port)
        await platform.start()
        self.platform = platform
        self._started.append(platform)

    async def _start_simulation(self) -> None:
        if not self.config.plants:
            return
        from simulators.simulation import Simulation, SimulationConfig

        options: dict[str, Any] = {}
        if self.config.course_secret:
            options["course_secret"] = self.config.course_secret
        simulation = Simulation(
            SimulationConfig(
                plants=self.config.plants,
                lab=self.config.lab,
                student=self.config.tenant,
                host=self.config.host,
                modbus_port=self.config.modbus_port,
                opcua_port=self.config.opcua_port,
                enable_opcua=self.config.enable_opcua,
                **options,
            )
        )
        await simulation.start()
        self.simulation = simulation
        self._started.append(simulation)
        assert self.platform is not None
        for plant, datasheet in simulation.datasheets.items():
            device = datasheet.device or f"{plant}-1"
            registration = DeviceRegistration(
                description=f"simulated {plant}", datasheet=datasheet.model_dump(mode="json")
            )
            self.platform.service.registry.register(self.config.tenant, device, registration)
        await self.platform.service.registry.flush()

    async def _start_gateways(self) -> None:
        from edge_gateway.config import GatewayConfig
        from edge_gateway.gateway import Gateway

        tenant_user = self.broker_users[1] if self.broker_users else None
        (self.config.data_dir / "gateway").mkdir(parents=True, exist_ok=True)
        for plant, datasheet in self.simulation.datasheets.items():
            try:
                config = GatewayConfig.from_datasheet(
                    datasheet,
                    broker_url=self.broker_url_for(tenant_user),
                    tenant=self.config.tenant,
                    buffer_path=self.config.data_dir / "gateway" / f"{plant}-buffer.db",
                )
            except Exception as error:  # one plant's gateway must not stop the classroom
                first_line = str(error).splitlines()[0]
                self.gateway_errors[plant] = f"{type(error).__name__}: {first_line}"
                _log.warning("no reference gateway for %s: %s", plant, error)
                continue
            gateway = Gateway(config)
            await gateway.start()
            self.gateways.append(gateway)
            self._started.append(gateway)

    async def stop(self) -> None:
        """Stop in reverse order; keeps going when one part fails to stop."""
        started, self._started = self._started, []
        for part in reversed(started):
            try:
                await part.stop()
            except Exception as error:
                _log.warning("stopping %s failed: %s", type(part).__name__, error)
        self.gateways = []

    def info(self) -> dict[str, Any]:
        """URLs and credentials, as printed by `iiotlab up`."""
        assert self.platform is not None
        base = f"http://{self.config.host}:{self.platform.port}"
        users = [
            {
                "username": u.username,
                "password": u.password,
                "tenant": u.tenant,
                "url": self.broker_url_for(u),
            }
            for u in self.broker_users
        ]
        info: dict[str, Any] = {
            "platform": base,
            "ui": base + "/",
            "api_docs": base + "/docs",
            "mqtt": self.broker_url_for(None),
            "mqtt_users": users,
            "tenant": self.config.tenant,
            "auth": self.config.auth,
            "tokens": [{"role": t.role, "tenant": t.tenant, "token": t.token} for t in self.tokens],
            "devices": [],
            "gateways": len(self.gateways),
            "gateway_errors": self.gateway_errors,
        }
        if self.broker is not None and self.broker.tls_port:
            info["mqtts"] = self.broker.tls_url
        if self.simulation is not None:
            info["modbus"] = f"{self.config.host}:{self.simulation.modbus_port}"
            info["opcua"] = self.simulation.opcua_url or None
            info["devices"] = [
                {
                    "plant": plant,
                    "device": sheet.device or f"{plant}-1",
                    "unit_id": sheet.modbus.unit_id,
                }
                for plant, sheet in self.simulation.datasheets.items()
            ]
        return info
