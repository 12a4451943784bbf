"""Multi-plant labs: one simulator per device of the line, and the line manifest.

A lab with `plants:` runs one Simulation per entry, each on its own Modbus port and OPC UA
endpoint and with its own per-student variant, behind its own Modbus fault proxy. The
gateway gets IIOTLAB_LINE: a JSON manifest naming every device, how to reach it and the
path of its datasheet (docs/contract.md, *Line manifest*).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.faults.proxy import TcpFaultProxy
from grader.observation import DeviceObservation, OpcuaSession, TruthEvent, TruthSeries
from grader.spec import LabSpec, PlantEntry
from iiotlab.datasheet import Datasheet
from iiotlab.errors import IiotlabError

if TYPE_CHECKING:
    from simulators.simulation import Simulation

MANIFEST = "line.json"


class LineError(IiotlabError):
    """A multi-plant lab's line cannot be built (an id too long for a variant...)."""


def variant_key(lab: LabSpec, entry: PlantEntry) -> str:
    """The lab id a device's variant is derived from.

    The first device of each plant kind uses the lab id itself, so its datasheet is the
    one `iiotlab datasheet --plant P --lab L --student S` prints; a second device of the
    same kind uses `<lab id>.<device>`, so every device of the line is its own variant.
    """
    first_of_kind = next(e for e in lab.plants if e.plant == entry.plant)
    if first_of_kind.device == entry.device:
        return lab.id
    key = f"{lab.id}.{entry.device}"
    if len(key) > 64:
        raise LineError(
            f"lab id and device {entry.device!r} make a variant id longer than 64 characters: "
            "use shorter device names in plants"
        )
    return key


@dataclass
class LineDevice:
    """One running device of the line."""

    entry: PlantEntry
    sim: Simulation
    modbus_proxy: TcpFaultProxy | None = None
    datasheet: Datasheet | None = None  # as the gateway gets it (after start_proxies)

    @property
    def device(self) -> str:
        return self.entry.device

    @property
    def sim_device(self) -> str:
        """The device name inside its simulator (truth and write log use it)."""
        return next(iter(self.sim.datasheets.values())).device or f"{self.entry.plant}-1"


async def start_line(
    lab: LabSpec,
    student: str,
    course_secret: str,
    out_dir: Path,
    stack: contextlib.AsyncExitStack,
) -> list[LineDevice]:
    """One simulation per entry, started in order (the first generates the OPC UA
    certificate the others reuse)."""
    from simulators.opcua.security import OpcuaSecurity
    from simulators.simulation import Simulation, SimulationConfig

    spec = lab.opcua
    devices = []
    for entry in lab.plants:
        config = SimulationConfig(
            plants=(entry.plant,),
            lab=variant_key(lab, entry),
            student=student,
            course_secret=course_secret,
            enable_modbus=entry.modbus,
            enable_opcua=entry.opcua,
            opcua_security=OpcuaSecurity(
                policies=spec.policies, allow_anonymous=spec.allow_anonymous
            ),
            cert_dir=out_dir / "opcua-server",
        )
        sim = await stack.enter_async_context(Simulation(config))
        devices.append(LineDevice(entry, sim))
    return devices


async def start_proxies(devices: list[LineDevice], stack: contextlib.AsyncExitStack) -> None:
    """A Modbus fault proxy per Modbus device; each datasheet as the gateway gets it."""
    for device in devices:
        sheet = next(iter(device.sim.datasheets.values()))
        if device.sim.modbus_port:
            device.modbus_proxy = await stack.enter_async_context(
                TcpFaultProxy("127.0.0.1", device.sim.modbus_port)
            )
            modbus = sheet.modbus.model_copy(update={"port": device.modbus_proxy.port})
            sheet = sheet.model_copy(update={"modbus": modbus})
        device.datasheet = sheet.model_copy(update={"device": device.device})


def _datasheet_json(sheet: Datasheet) -> str:
    return json.dumps(sheet.model_dump(mode="json", exclude_none=True), indent=2)


def write_line(devices: list[LineDevice], folder: Path) -> Path:
    """Every device's datasheet and the manifest into `folder`; the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for device in devices:
        assert device.datasheet is not None, "start_proxies first"
        sheet_path = (folder / f"{device.device}.json").resolve()
        sheet_path.write_text(_datasheet_json(device.datasheet), encoding="utf-8")
        proxy = device.modbus_proxy
        entries.append(
            {
                "device": device.device,
                "plant": device.entry.plant,
                "modbus": {"host": "127.0.0.1", "port": proxy.port} if proxy else None,
                "opcua_url": device.sim.opcua_url or None,
                "datasheet": str(sheet_path),
            }
        )
    manifest = folder / MANIFEST
    manifest.write_text(json.dumps({"devices": entries}, indent=2), encoding="utf-8")
    return manifest.resolve()


def device_of(devices: list[LineDevice], name: str | None) -> LineDevice:
    """The named device, or the first when None (single-plant variables point at it)."""
    if name is None:
        return devices[0]
    for device in devices:
        if device.device == name:
            return device
    raise KeyError(name)  # the spec validated scenario devices: a grader bug


def truth_events(devices: list[LineDevice]) -> list[TruthEvent]:
    """Every simulator's events, named by the line's device names."""
    events = []
    for device in devices:
        for event in device.sim.truth.events():
            name = device.device if event.device in (device.sim_device, None, "") else event.device
            events.append(TruthEvent(event.ts_ms, event.kind, name or "", dict(event.detail)))
    return sorted(events, key=lambda e: e.ts_ms)


def observations(devices: list[LineDevice]) -> tuple[DeviceObservation, ...]:
    """Per device: its datasheet, truth, writes and OPC UA sessions."""
    out = []
    for device in devices:
        assert device.datasheet is not None
        samples = sorted(device.sim.truth.samples(device.sim_device), key=lambda s: s[0])
        writes = tuple(replace(w, device=device.device) for w in device.sim.write_log)
        sessions = tuple(OpcuaSession.of(s) for s in device.sim.opcua_sessions)
        out.append(
            DeviceObservation(
                device.device,
                device.entry.plant,
                device.datasheet,
                TruthSeries(tuple(samples)),
                writes,
                sessions,
                device.modbus_proxy.connections if device.modbus_proxy else None,
            )
        )
    return tuple(out)
