"""The simulation host: plants on a fixed tick behind one Modbus and one OPC UA server.

Both protocol servers serve the same snapshot, taken after each tick, so a gateway reading
Modbus and another reading OPC UA see identical values (one state).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from iiotlab.datasheet import Datasheet
from iiotlab.errors import ConfigError
from iiotlab.lifecycle import Service
from iiotlab.settings import DEVELOPMENT_COURSE_SECRET
from iiotlab.variants import variant_random
from simulators.base import PlantRuntime
from simulators.modbus_server import ModbusPlcServer
from simulators.plants import create_plant
from simulators.plants.common import ProcessPlant
from simulators.runtime import LivePlant, WriteRecord, now_ms
from simulators.scenario import SENSOR_FAULTS, Scenario, ScenarioEvent
from simulators.truth import GroundTruth
from simulators.variants import PlantVariant, build_variant, device_name

if TYPE_CHECKING:
    from simulators.opcua_server import OpcuaSecurity, OpcuaSessionRecord

logger = logging.getLogger(__name__)


def _opcua_module() -> ModuleType | None:
    """sim-opcua's server module, imported lazily (asyncua is heavy); None if absent."""
    try:
        return importlib.import_module("simulators.opcua_server")
    except ModuleNotFoundError as exc:
        if exc.name == "simulators.opcua_server":
            return None
        raise


def _default_security() -> OpcuaSecurity:
    module = _opcua_module()
    if module is None:
        return None  # type: ignore[return-value]  # no OPC UA server to configure
    security: OpcuaSecurity = module.OpcuaSecurity()
    return security


@dataclass(frozen=True)
class SimulationConfig:
    plants: tuple[str, ...] = ("tank",)
    lab: str = "sandbox"
    student: str = "demo"
    course_secret: str = DEVELOPMENT_COURSE_SECRET
    host: str = "127.0.0.1"
    modbus_port: int = 0
    opcua_port: int = 0
    enable_modbus: bool = True
    enable_opcua: bool = True
    opcua_security: OpcuaSecurity = field(default_factory=_default_security)
    tick_hz: float = 10.0
    scenario: Scenario | None = None
    truth_log: Path | None = None
    cert_dir: Path | None = None  # OPC UA server certificate; None = a temporary folder


class Simulation(Service):
    """`async with Simulation(config) as sim:` serves the configured plants."""

    def __init__(self, config: SimulationConfig | None = None) -> None:
        self.config = config or SimulationConfig()
        if not self.config.plants:
            raise ConfigError(
                "a simulation needs at least one plant",
                key="plants",
                expected="one or more of tank, boiler, packaging, ...",
            )
        if self.config.tick_hz <= 0:
            raise ConfigError(
                "tick rate must be positive",
                key="tick_hz",
                value=self.config.tick_hz,
                expected="a rate in Hz > 0",
            )
        self.truth = GroundTruth(self.config.truth_log)
        self.write_log: list[WriteRecord] = []
        self.datasheets: dict[str, Datasheet] = {}
        self.variants: dict[str, PlantVariant] = {}
        self._runtimes: dict[str, LivePlant] = {}
        self._modbus: ModbusPlcServer | None = None
        self._opcua: Any = None
        self._tick_task: asyncio.Task[None] | None = None
        self._pending: list[ScenarioEvent] = list(
            self.config.scenario.events if self.config.scenario else ()
        )
        self._ticks = 0
        self._temp_cert_dir: Path | None = None
        self._restarts = 0
        self.modbus_port = 0
        self.opcua_port = 0
        self.opcua_url = ""

    @property
    def period_s(self) -> float:
        return 1.0 / self.config.tick_hz

    @property
    def elapsed_s(self) -> float:
        """Simulated time since start (ticks x period)."""
        return self._ticks * self.period_s

    @property
    def opcua_sessions(self) -> list[OpcuaSessionRecord]:
        return list(self._opcua.sessions) if self._opcua is not None else []

    def runtime(self, plant: str) -> PlantRuntime:
        return self._live(plant)

    def _live(self, plant: str) -> LivePlant:
        for kind, runtime in self._runtimes.items():
            if plant in (kind, runtime.device):
                return runtime
        raise KeyError(f"no plant {plant!r} in this simulation; have {list(self._runtimes)}")

    def _build_plants(self) -> None:
        cfg = self.config
        for kind in cfg.plants:
            variant = build_variant(kind, cfg.lab, cfg.student, cfg.course_secret)
            self.variants[kind] = variant
            self.datasheets[kind] = variant.datasheet
            runtime = LivePlant(
                self._new_plant(kind, variant),
                variant.datasheet.device or device_name(kind),
                self.write_log,
                plant_factory=functools.partial(self._new_plant, kind, variant),
                fault_seed=variant.seed,
            )
            runtime.add_write_listener(self._record_write)
            self._runtimes[kind] = runtime

    def _new_plant(self, kind: str, variant: PlantVariant) -> ProcessPlant:
        self._restarts += 1
        rng = variant_random(variant.seed, f"process-noise:{kind}:{self._restarts}")
        return create_plant(kind, variant.constants, rng)

    def _record_write(self, record: WriteRecord) -> None:
        detail = {
            "tag": record.tag,
            "value": record.value,
            "source": record.source,
            "protocol": record.protocol,
            "ok": record.ok,
            "error": record.error,
        }
        self.truth.record_event(record.ts_ms, "write", record.device, detail)

    async def start(self) -> None:
        if self._tick_task is not None:
            return
        self._build_plants()
        self.truth.open()
        try:
            if self.config.enable_modbus:
                await self._start_modbus()
            if self.config.enable_opcua:
                await self._start_opcua()
        except BaseException:
            await self.stop()
            raise
        self._fill_endpoints()
        for kind, runtime in self._runtimes.items():
            self.truth.record_event(
                now_ms(),
                "start",
                runtime.device,
                {"plant": kind, "unit_id": self.datasheets[kind].modbus.unit_id},
            )
        self._tick_task = asyncio.create_task(self._run(), name="simulation-tick")

    async def _start_modbus(self) -> None:
        pairs = [(self._runtimes[k], self.datasheets[k]) for k in self._runtimes]
        self._modbus = ModbusPlcServer(pairs, host=self.config.host, port=self.config.modbus_port)
        await self._modbus.start()
        self.modbus_port = self._modbus.port

    async def _start_opcua(self) -> None:
        module = _opcua_module()
        if module is None:
            logger.warning("OPC UA server module is not installed; serving Modbus only")
            return
        cert_dir = self.config.cert_dir
        if cert_dir is None:
            cert_dir = self._temp_cert_dir = Path(tempfile.mkdtemp(prefix="iiotlab-opcua-"))
        self._opcua = module.OpcuaPlantServer(
            [(self._runtimes[k], self.datasheets[k]) for k in self._runtimes],
            host=self.config.host,
            port=self.config.opcua_port,
            security=self._security(),
            cert_dir=cert_dir,
        )
        await self._opcua.start()
        self.opcua_port = int(self._opcua.port)
        self.opcua_url = str(self._opcua.url)

    def _security(self) -> Any:
        """The configured security plus every datasheet's OPC UA users."""
        security = self.config.opcua_security or _default_security()
        users: dict[str, str] = {}
        for datasheet in self.datasheets.values():
            users.update({u["username"]: u["password"] for u in datasheet.opcua.users})
        users.update(security.users)
        return replace(security, users=users)

    def _fill_endpoints(self) -> None:
        for kind, datasheet in self.datasheets.items():
            modbus = datasheet.modbus.model_copy(
                update={"host": self.config.host, "port": self.modbus_port or None}
            )
            opcua = datasheet.opcua.model_copy(update={"endpoint": self.opcua_url or None})
            self.datasheets[kind] = datasheet.model_copy(update={"modbus": modbus, "opcua": opcua})

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            self._tick()
            await self._fire_due_events()
            deadline += self.period_s
            delay = deadline - loop.time()
            if delay < -1.0:  # far behind (suspended, overloaded): skip, don't burst
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))

    def _tick(self) -> None:
        self._ticks += 1
        ts = now_ms()
        for runtime in self._runtimes.values():
            snapshot = runtime.tick(self.period_s, ts)
            hidden = runtime.plant.truth_values()
            self.truth.record_sample(
                runtime.device, ts, {**snapshot, **hidden} if hidden else snapshot
            )
        if self._ticks % int(max(1, self.config.tick_hz)) == 0:
            self.truth.flush()

    async def _fire_due_events(self) -> None:
        while self._pending and self._pending[0].at_s <= self.elapsed_s + 1e-9:
            event = self._pending.pop(0)
            try:
                await self.inject(event)
            except ConfigError as exc:
                logger.error("scenario event skipped: %s", exc)
                self.truth.record_event(
                    now_ms(),
                    "scenario_error",
                    event.device,
                    {"kind": event.kind, "error": str(exc)},
                )

    async def stop(self) -> None:
        task, self._tick_task = self._tick_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if self._opcua is not None:
                opcua, self._opcua = self._opcua, None
                await opcua.stop()
        finally:
            if self._modbus is not None:
                modbus, self._modbus = self._modbus, None
                await modbus.stop()
            self.truth.close()
            if self._temp_cert_dir is not None:
                shutil.rmtree(self._temp_cert_dir, ignore_errors=True)
                self._temp_cert_dir = None

    async def inject(self, event: ScenarioEvent) -> None:
        """Apply one scenario event now and record it in the ground truth."""
        runtime = self._event_runtime(event)
        if event.kind in SENSOR_FAULTS:
            self._check_tag(event, runtime)
            runtime.add_fault(event.kind, str(event.tag), event.duration_s, event.magnitude)
        elif event.kind == "modbus_link_down":
            if self._modbus is not None:
                await self._modbus.link_down(event.duration_s)
        elif event.kind == "plc_restart":
            runtime.restart()
            if self._modbus is not None and event.duration_s > 0:
                await self._modbus.link_down(event.duration_s)
        elif event.kind == "opcua_restart":
            if self._opcua is not None:
                await self._opcua.restart()
        elif event.kind == "register_map_change":
            self._change_register_map(runtime, event)
        elif event.kind == "operator_write":
            self._check_tag(event, runtime)
            assert event.value is not None
            runtime.write(str(event.tag), event.value, "scenario:operator")
        elif event.kind == "constant_change":
            names = runtime.constant_names()
            if event.constant not in names:
                raise self._event_error(event, "constant", event.constant, ", ".join(names))
            runtime.change_constant(str(event.constant), float(event.value or 0), event.duration_s)
        self.truth.record_event(now_ms(), event.kind, runtime.device, event.detail())

    def _event_runtime(self, event: ScenarioEvent) -> LivePlant:
        if event.device is None:
            return next(iter(self._runtimes.values()))
        try:
            return self._live(event.device)
        except KeyError:
            raise self._event_error(
                event, "device", event.device, ", ".join(r.device for r in self._runtimes.values())
            ) from None

    def _check_tag(self, event: ScenarioEvent, runtime: LivePlant) -> None:
        if event.tag not in runtime.snapshot():
            raise self._event_error(event, "tag", event.tag, ", ".join(runtime.snapshot()))

    def _event_error(
        self, event: ScenarioEvent, key: str, value: object, names: str
    ) -> ConfigError:
        source = self.config.scenario.source if self.config.scenario else None
        return ConfigError(
            f"{event.kind} event names an unknown {key}",
            file=source,
            line=event.line,
            key=key,
            value=value,
            expected=f"one of {names}",
        )

    def _change_register_map(self, runtime: LivePlant, event: ScenarioEvent) -> None:
        kind = runtime.plant_kind
        datasheet = shifted_datasheet(self.datasheets[kind], event.shift, event.word_order)
        self.datasheets[kind] = datasheet
        if self._modbus is not None:
            self._modbus.remap(datasheet)


def shifted_datasheet(datasheet: Datasheet, shift: int, word_order: str | None) -> Datasheet:
    """The datasheet with every address moved by shift (and 32/64-bit word order changed)."""
    tags = []
    for tag in datasheet.tags:
        if tag.modbus is None:
            tags.append(tag)
            continue
        update: dict[str, Any] = {"address": max(0, min(65535, tag.modbus.address + shift))}
        if word_order and tag.modbus.type in ("int32", "uint32", "float32", "float64"):
            update["word_order"] = word_order
        tags.append(tag.model_copy(update={"modbus": tag.modbus.model_copy(update=update)}))
    return datasheet.model_copy(update={"tags": tags})


def endpoints(sim: Simulation) -> Mapping[str, object]:
    """What a user needs to connect: ports and unit ids (the CLI prints this)."""
    return {
        "modbus": f"{sim.config.host}:{sim.modbus_port}" if sim.modbus_port else None,
        "opcua": sim.opcua_url or None,
        "units": {ds.device: ds.modbus.unit_id for ds in sim.datasheets.values()},
    }
