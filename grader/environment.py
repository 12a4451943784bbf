"""prepare -> run: the lab's world for one student, all on free loopback ports.

LabEnvironment starts the simulation (the lab's OPC UA security), the broker (embedded or
Mosquitto, the lab's or the student's auth/TLS, plus the grader's admin observer), the
fault proxies the gateway connects through, and the observer that records every message
on the tenant's topics with its arrival time. It is also the probes' ProbeEnvironment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from grader import line
from grader.faults.proxy import TcpFaultProxy
from grader.observation import ObservedMessage
from grader.probes.context import BrokerAccess
from grader.spec import LabPlan, LabSpec

if TYPE_CHECKING:
    from grader.modbus_tap import ModbusTap
    from iiotlab.certs import TlsFiles
    from iiotlab.mqtt import Broker, MqttClient
    from simulators.simulation import Simulation
from grader.mosquitto_submission import MosquittoSubmission
from grader.submission import BrokerPolicy, SubmissionError
from iiotlab.datasheet import Datasheet
from iiotlab.errors import IiotlabError
from iiotlab.gateway_env import GatewayEnvironment
from iiotlab.variants import derive_seed, variant_random

logger = logging.getLogger(__name__)
OBSERVER = "grader-observer"


class NotGradableError(IiotlabError):
    """The grader itself cannot run the lab here (missing package, port clash...)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class StudentRun:
    plan: LabPlan
    student: str
    course_secret: str
    out_dir: Path
    broker_policy: BrokerPolicy | None = None  # security labs: the student's broker settings
    mosquitto: MosquittoSubmission | None = None  # sec-03: the student's own mosquitto.conf

    @property
    def lab(self) -> LabSpec:
        return self.plan.lab

    @property
    def seed(self) -> int:
        return derive_seed(self.course_secret, self.lab.id, self.student)


def _url(scheme: str, host: str, port: int, user: str | None, password: str | None) -> str:
    credentials = ""
    if user is not None:
        credentials = f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
    return f"{scheme}://{credentials}{host}:{port}"


class LabEnvironment:
    def __init__(self, run: StudentRun) -> None:
        self.run = run
        self.lab = run.lab
        self.tenant = run.student
        self.device = run.lab.device_name
        self.messages: list[ObservedMessage] = []
        self._sim: Simulation | None = None
        self.broker: Broker | None = None
        self.broker_access: BrokerAccess | None = None
        self.platform_url: str | None = None
        self.platform_token: str | None = None  # the grader's instructor token (probes)
        self.student_platform_token: str | None = None  # handed to the submission
        self.mqtt_proxy: TcpFaultProxy | None = None
        self.modbus_proxy: TcpFaultProxy | None = None
        self.student_proxy_port: int | None = None  # modbus_proxy labs: the submission's port
        self.tap: ModbusTap | None = None  # modbus_tap labs: the grader's Modbus tap (sec-04)
        self.datasheet: Datasheet | None = None
        self.datasheet_path = run.out_dir / "datasheet.json"
        self.line: list[line.LineDevice] = []  # multi-plant labs: every device, in order
        self.line_manifest: Path | None = None  # practice mode's copy (out_dir/line)
        self.state_dir = run.out_dir / "state"
        self._observer: MqttClient | None = None
        self._observer_task: asyncio.Task[None] | None = None
        self._admin_password = secrets.token_urlsafe(12)
        self._ca_file: Path | None = None
        self._stack = contextlib.AsyncExitStack()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.run.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        try:
            await self._start_simulation()
            await self._start_broker()
            if self.lab.platform:
                await self._start_platform()
            await self._start_proxies()
            if self.lab.modbus_proxy:
                self.student_proxy_port = free_port()
            if self.lab.modbus_tap:
                await self._start_tap()
            await self._start_observer()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        task, self._observer_task = self._observer_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- parts ------------------------------------------------------------------------

    async def _start_simulation(self) -> None:
        try:
            from simulators.opcua.security import OpcuaSecurity
            from simulators.simulation import Simulation, SimulationConfig
        except ImportError as exc:
            raise NotGradableError(f"the simulator is not installed: {exc}") from exc
        if self.lab.is_line:
            self.line = await line.start_line(
                self.lab, self.run.student, self.run.course_secret, self.run.out_dir, self._stack
            )
            self._sim = self.line[0].sim
            return
        spec = self.lab.opcua
        config = SimulationConfig(
            plants=(self.lab.plant,),
            lab=self.lab.id,
            student=self.run.student,
            course_secret=self.run.course_secret,
            enable_modbus=self.lab.modbus,
            enable_opcua=spec.enabled,
            opcua_security=OpcuaSecurity(
                policies=spec.policies, allow_anonymous=spec.allow_anonymous
            ),
            cert_dir=self.run.out_dir / "opcua-server",
        )
        self._sim = await self._stack.enter_async_context(Simulation(config))

    @property
    def sim(self) -> Simulation:
        """The lab's running simulation (after start())."""
        if self._sim is None:
            raise NotGradableError("the simulation is not running")
        return self._sim

    def _tls_files(self) -> TlsFiles:
        from iiotlab.certs import make_tls_files

        files = make_tls_files(self.run.out_dir / "tls")
        self._ca_file = files.ca_file
        return files

    def _gateway_user(self) -> tuple[str | None, str | None]:
        policy = self.run.broker_policy
        if policy is not None:
            mine = [u for u in policy.users if u.tenant == self.tenant] or list(policy.users)
            return (mine[0].username, mine[0].password) if mine else (None, None)
        if not self.lab.broker.auth:
            return None, None
        password = f"{variant_random(self.run.seed, 'mqtt-password').getrandbits(64):016x}"
        return f"gw-{self.tenant}", password

    async def _start_broker(self) -> None:
        from iiotlab.mqtt import BrokerConfig, BrokerStartError, BrokerUser, make_broker

        if self.run.mosquitto is not None:
            await self._start_submitted_mosquitto(self.run.mosquitto)
            return
        policy, spec = self.run.broker_policy, self.lab.broker
        tls_wanted = policy.tls if policy is not None else spec.tls
        plaintext = policy.plaintext if policy is not None else not spec.tls
        user, password = self._gateway_user()
        users = [BrokerUser(OBSERVER, self._admin_password, None)]
        if policy is not None:
            users += [BrokerUser(u.username, u.password, u.tenant) for u in policy.users]
        elif user is not None and password is not None:
            users.append(BrokerUser(user, password, self.tenant))
        anonymous = policy.allow_anonymous if policy is not None else not spec.auth
        # The broker binds port 0 and says which it got: a port picked here and bound later
        # can be taken meanwhile by a classmate's grading (seen: "address already in use").
        # Only a plaintext port that must stay closed is picked here, and nothing binds it.
        closed = None if plaintext else free_port()
        config = BrokerConfig(
            port=0,
            users=tuple(users),
            allow_anonymous=anonymous,
            tls=self._tls_files() if tls_wanted else None,
            tls_port=0 if tls_wanted else None,
            plaintext=plaintext,
        )
        try:
            self.broker = await self._stack.enter_async_context(make_broker(spec.kind, config))
        except (OSError, BrokerStartError) as exc:
            raise NotGradableError(f"the {spec.kind} broker did not start: {exc}") from exc
        self.broker_access = BrokerAccess(
            host="127.0.0.1",
            plaintext_port=self.broker.port if plaintext else None,
            tls_port=self.broker.tls_port,
            ca_file=str(self._ca_file) if self._ca_file else None,
            gateway_username=user,
            gateway_password=password,
            tls_required=not plaintext,
            closed_plaintext_port=closed,
        )

    async def _start_submitted_mosquitto(self, submission: MosquittoSubmission) -> None:
        """sec-03: the student's mosquitto.conf, rewritten by grader/mosquitto_submission.py."""
        from grader.mosquitto_submission import GraderAccount, SubmittedMosquitto
        from iiotlab.mqtt import BrokerStartError

        tls = self._tls_files() if submission.tls is not None else None
        broker = SubmittedMosquitto(submission, tls, GraderAccount(OBSERVER, self._admin_password))
        try:
            self.broker = await self._stack.enter_async_context(broker)
        except (OSError, BrokerStartError) as exc:
            if "Error" in str(exc) and "in use" not in str(exc):  # mosquitto refused the files
                raise SubmissionError(
                    f"Mosquitto refused your configuration: {exc}",
                    file=submission.folder / "mosquitto.conf",
                    expected="a configuration mosquitto 2.0 starts with (try `mosquitto -c "
                    "mosquitto.conf` after envsubst)",
                ) from exc
            raise NotGradableError(f"the student's mosquitto did not start: {exc}") from exc
        plaintext = submission.plaintext is not None
        self.broker_access = BrokerAccess(
            host="127.0.0.1",
            plaintext_port=broker.port if plaintext else None,
            tls_port=broker.tls_port,
            ca_file=str(self._ca_file) if self._ca_file else None,
            gateway_username=submission.username,
            gateway_password=submission.password,
            tls_required=submission.tls is not None,
            closed_plaintext_port=None if plaintext else broker.closed_port,
        )

    async def _start_platform(self) -> None:
        """The mini platform, subscribed to the tenant's topics with the grader's broker user.

        Auth is on: the submission gets a student token bound to its tenant, the probes an
        instructor token. The platform talks to the broker directly, not through the fault
        proxy, so a broker outage in the scenario cuts the gateway, not the platform.
        """
        try:
            from iiot_platform.settings import ApiToken, PlatformSettings
            from iiot_platform.stack import PlatformServer
        except ImportError as exc:
            raise NotGradableError(f"the platform is not installed: {exc}") from exc
        self.platform_token = secrets.token_urlsafe(24)
        self.student_platform_token = secrets.token_urlsafe(24)
        url, ca = self.admin_url()
        settings = PlatformSettings(
            broker_url=url,
            broker_ca_file=ca,
            data_dir=self.run.out_dir / "platform",
            auth_enabled=True,
            tokens=(
                ApiToken(self.platform_token, "instructor", None, "grader"),
                ApiToken(self.student_platform_token, "student", self.tenant, self.tenant),
            ),
            default_tenant=self.tenant,
            client_id=f"grader-platform-{secrets.token_hex(3)}",
            subscribe_filter=f"iiot/{self.tenant}/#",
            stale_check_interval_s=0.5,
        )
        server = PlatformServer(settings, "127.0.0.1", 0)
        try:
            await server.start()
        except (OSError, RuntimeError) as exc:
            raise NotGradableError(f"the platform did not start: {exc}") from exc
        self._stack.push_async_callback(server.stop)
        self.platform_url = f"http://127.0.0.1:{server.port}"

    async def _start_proxies(self) -> None:
        access = self.broker_access
        assert access is not None
        target = access.tls_port if access.tls_required else access.plaintext_port
        assert target is not None
        self.mqtt_proxy = await self._stack.enter_async_context(TcpFaultProxy("127.0.0.1", target))
        if self.line:
            await line.start_proxies(self.line, self._stack)
            self.modbus_proxy = self.line[0].modbus_proxy
            self.datasheet = sheet = self.line[0].datasheet
            assert sheet is not None
            self.datasheet_path.write_text(
                json.dumps(sheet.model_dump(mode="json", exclude_none=True), indent=2),
                encoding="utf-8",
            )
            self.line_manifest = line.write_line(self.line, self.run.out_dir / "line")
            return
        if self.sim.modbus_port:
            self.modbus_proxy = await self._stack.enter_async_context(
                TcpFaultProxy("127.0.0.1", self.sim.modbus_port)
            )
        sheet = self.sim.datasheets[self.lab.plant]
        if self.modbus_proxy is not None:
            modbus = sheet.modbus.model_copy(update={"port": self.modbus_proxy.port})
            sheet = sheet.model_copy(update={"modbus": modbus})
        self.datasheet = sheet.model_copy(update={"device": self.device})
        self.datasheet_path.write_text(
            json.dumps(self.datasheet.model_dump(mode="json", exclude_none=True), indent=2),
            encoding="utf-8",
        )

    async def _start_tap(self) -> None:
        """sec-04: the grader's Modbus tap in front of the PLC (grader/modbus_tap.py)."""
        from grader.modbus_tap import ModbusTap, tap_schedule

        if not self.sim.modbus_port or self.datasheet is None:
            raise NotGradableError("modbus_tap needs the plant's Modbus server")
        tap = ModbusTap(
            "127.0.0.1",
            self.sim.modbus_port,
            self.datasheet.modbus.unit_id,
            tap_schedule(self.run.seed),
        )
        self.tap = await self._stack.enter_async_context(tap)

    def admin_url(self) -> tuple[str, Path | None]:
        access = self.broker_access
        assert access is not None
        if access.plaintext_port:
            return _url(
                "mqtt", access.host, access.plaintext_port, OBSERVER, self._admin_password
            ), None
        assert access.tls_port is not None
        return _url(
            "mqtts", access.host, access.tls_port, OBSERVER, self._admin_password
        ), self._ca_file

    def _client(self, url: str, ca: Path | None, name: str, **options: Any) -> MqttClient:
        from iiotlab.mqtt import MqttClient

        return MqttClient(url, client_id=f"{name}-{secrets.token_hex(3)}", ca_file=ca, **options)

    async def _start_observer(self) -> None:
        url, ca = self.admin_url()
        self._observer = observer = self._client(url, ca, "grader-observer")
        await observer.connect()
        self._stack.push_async_callback(observer.disconnect)
        await observer.subscribe(f"iiot/{self.tenant}/#")
        self._observer_task = asyncio.create_task(self._observe(observer), name="grader-observer")

    async def _observe(self, observer: MqttClient) -> None:
        async for message in observer.messages():
            self.messages.append(
                ObservedMessage(
                    message.topic, message.payload, message.received_ms, message.retain, message.qos
                )
            )

    # -- what the gateway under test gets ---------------------------------------------

    def gateway_env(
        self,
        datasheet: Path | None = None,
        state_dir: Path | None = None,
        ca_file: Path | None = None,
        line_manifest: Path | None = None,
    ) -> dict[str, str]:
        """The contract variables for the gateway under test.

        The paths default to the out folder's (practice mode: the student's own machine);
        the grader's own runs pass the sandbox workspace's copies instead.
        """
        manifest = line_manifest or self.line_manifest
        access = self.broker_access
        assert access is not None and self.mqtt_proxy is not None
        scheme = "mqtts" if access.tls_required else "mqtt"
        ca = ca_file or (Path(access.ca_file) if access.ca_file else None)
        modbus = self.modbus_proxy
        variables = GatewayEnvironment(
            mqtt_url=_url(
                scheme,
                "127.0.0.1",
                self.mqtt_proxy.port,
                access.gateway_username,
                access.gateway_password,
            ),
            mqtt_ca=ca.resolve() if ca is not None else None,
            tenant=self.tenant,
            device=self.device,
            datasheet=(datasheet or self.datasheet_path).resolve(),
            state_dir=(state_dir or self.state_dir).resolve(),
            modbus_host="127.0.0.1" if modbus is not None else None,
            modbus_port=modbus.port if modbus is not None else None,
            proxy_port=self.student_proxy_port,
            opcua_url=self.sim.opcua_url or None,
            line=manifest.resolve() if manifest is not None else None,
            platform_url=self.platform_url if self.student_platform_token else None,
            platform_token=self.student_platform_token if self.platform_url else None,
            tap_url=self.tap.url if self.tap is not None else None,
        )
        return variables.to_environ()

    def device_link(self, device: str | None) -> TcpFaultProxy | None:
        """The Modbus link of a line's device (None: the first), or of the single plant."""
        if not self.line:
            return self.modbus_proxy
        return line.device_of(self.line, device).modbus_proxy

    def device_sim(self, device: str | None) -> Simulation:
        """The simulation serving a line's device (None: the first), or the single one."""
        if not self.line:
            return self.sim
        return line.device_of(self.line, device).sim

    # -- ProbeEnvironment -------------------------------------------------------------

    @property
    def broker_info(self) -> BrokerAccess:
        assert self.broker_access is not None
        return self.broker_access

    async def first_retained(self, topic: str, wait_s: float) -> ObservedMessage | None:
        url, ca = self.admin_url()
        client = self._client(url, ca, "grader-retained", auto_reconnect=False)
        try:
            await client.connect(timeout=wait_s)
            await client.subscribe(topic)
            async with asyncio.timeout(wait_s):
                async for m in client.messages():
                    return ObservedMessage(m.topic, m.payload, m.received_ms, m.retain, m.qos)
        except TimeoutError:
            return None
        finally:
            await client.disconnect()
        return None

    async def publish_admin(self, topic: str, payload: bytes) -> None:
        if self._observer is None:
            raise NotGradableError("the grader's MQTT observer is not connected")
        await self._observer.publish(topic, payload, qos=1)

    async def try_connect(
        self, *, username: str | None, password: str | None, port: int, tls: bool
    ) -> str | None:
        from iiotlab.mqtt import MqttConnectError

        url = _url("mqtts" if tls else "mqtt", "127.0.0.1", port, username, password)
        client = self._client(
            url, self._ca_file if tls else None, "grader-attacker", auto_reconnect=False
        )
        try:
            await client.connect(timeout=5)
        except MqttConnectError as exc:
            return str(exc)[:200]
        except (OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        await client.disconnect()
        return None

    async def cross_tenant(self, username: str, password: str, other: str) -> dict[str, str]:
        from grader.probes.attacks import cross_tenant_attempt

        access = self.broker_info
        tls = access.tls_required
        port = access.tls_port if tls else access.plaintext_port
        assert port is not None
        attacker = self._client(
            _url("mqtts" if tls else "mqtt", "127.0.0.1", port, username, password),
            self._ca_file if tls else None,
            "grader-intruder",
            auto_reconnect=False,
        )
        admin_url, ca = self.admin_url()
        witness = self._client(admin_url, ca, "grader-witness", auto_reconnect=False)
        return await cross_tenant_attempt(attacker, witness, username, other)
