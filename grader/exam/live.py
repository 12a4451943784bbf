"""A candidate's live lab environment for one task, kept alive for the whole exam.

The environment is the grader's own LabEnvironment (simulation, broker, platform where the
lab needs it, fault proxies, observer), all on loopback. The candidate's workstation reaches
it through public relays bound on the exam's --host, in front of the fault proxies, so a
scenario's outage still cuts the candidate's links. What the candidate gets (gateway.env,
datasheet) names the relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from grader.environment import LabEnvironment, StudentRun
from grader.exam.spec import ExamTask
from grader.faults.proxy import TcpFaultProxy
from grader.spec import LabPlan
from iiotlab.datasheet import Datasheet

DATASHEET_NAME = "datasheet.json"
CA_NAME = "ca.pem"
LINE_NAME = "line.json"  # a multi-plant lab's manifest; its datasheets are <device>.json


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _moved(url: str, host: str, port: int) -> str:
    """`url` with its host:port replaced (credentials and path kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class GatewayRelay(TcpFaultProxy):
    """A public relay that notes when a client (the candidate's gateway) last connected."""

    def __init__(self, target_host: str, target_port: int, *, host: str) -> None:
        super().__init__(target_host, target_port, host=host)
        self.accepts = 0
        self.last_accept_ms = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        self.last_accept_ms = int(time.time() * 1000)
        await super()._accept(reader, writer)


class LiveLab:
    """One (candidate, task): the running environment and its public relays."""

    def __init__(
        self, task: ExamTask, plan: LabPlan, run: StudentRun, host: str, advertised: str
    ) -> None:
        self.task, self.plan, self.run = task, plan, run
        self.host, self.advertised = host, advertised
        self.env = LabEnvironment(run)
        self.lock = asyncio.Lock()  # one attempt at a time on this environment
        self.relays: dict[str, GatewayRelay] = {}
        self.phase = "idle"  # idle | queued | waiting_gateway | grading
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        try:
            await self._stack.enter_async_context(self.env)
            await self._relay_all()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _relay(self, name: str, port: int) -> None:
        relay = GatewayRelay("127.0.0.1", port, host=self.host)
        self.relays[name] = await self._stack.enter_async_context(relay)

    async def _relay_all(self) -> None:
        env = self.env
        assert env.mqtt_proxy is not None
        await self._relay("mqtt", env.mqtt_proxy.port)
        for device in env.line:  # a multi-plant lab: every device's links
            if device.modbus_proxy is not None:
                await self._relay(f"modbus/{device.device}", device.modbus_proxy.port)
            if device.sim.opcua_url:
                await self._relay(f"opcua/{device.device}", _port(device.sim.opcua_url))
        if env.line:  # the single-plant variables name the first device, as in practice
            first = env.line[0].device
            for kind in ("modbus", "opcua"):
                if f"{kind}/{first}" in self.relays:
                    self.relays[kind] = self.relays[f"{kind}/{first}"]
        else:
            if env.modbus_proxy is not None:
                await self._relay("modbus", env.modbus_proxy.port)
            if env.sim.opcua_url:
                await self._relay("opcua", _port(env.sim.opcua_url))
        if env.platform_url:
            port = urlsplit(env.platform_url).port
            assert port is not None
            await self._relay("platform", port)

    # -- what the candidate gets ------------------------------------------------------

    def endpoints(self) -> dict[str, Any]:
        """Where the candidate's gateway connects, and with what credentials."""
        env, host = self.env, self.advertised
        access = env.broker_info
        out: dict[str, Any] = {
            "mqtt": {
                "url": self.gateway_env()["IIOTLAB_MQTT_URL"],
                "host": host,
                "port": self.relays["mqtt"].port,
                "tls": access.tls_required,
                "username": access.gateway_username,
                "password": access.gateway_password,
            },
            "tenant": env.tenant,
            "device": env.device,
        }
        if "modbus" in self.relays:
            out["modbus"] = {"host": host, "port": self.relays["modbus"].port}
        if "opcua" in self.relays:
            out["opcua"] = {"url": self.gateway_env()["IIOTLAB_OPCUA_URL"]}
        if "platform" in self.relays:
            out["platform"] = {
                "url": self.gateway_env()["IIOTLAB_PLATFORM_URL"],
                "token": env.student_platform_token,
            }
        if env.line:
            out["line"] = [
                {key: entry[key] for key in ("device", "plant", "modbus", "opcua_url")}
                for entry in self.line_manifest()["devices"]
            ]
        return out

    def gateway_env(self) -> dict[str, str]:
        """Practice mode's gateway.env for a remote workstation: the relays' addresses, and
        the datasheet (and CA) as file names next to the downloaded gateway.env."""
        env, host = self.env, self.advertised
        variables = env.gateway_env()
        variables["IIOTLAB_MQTT_URL"] = _moved(
            variables["IIOTLAB_MQTT_URL"], host, self.relays["mqtt"].port
        )
        variables["IIOTLAB_DATASHEET"] = DATASHEET_NAME
        variables["IIOTLAB_STATE_DIR"] = "state"
        if "IIOTLAB_MQTT_CA" in variables:
            variables["IIOTLAB_MQTT_CA"] = CA_NAME
        if "modbus" in self.relays:
            variables["IIOTLAB_MODBUS_HOST"] = host
            variables["IIOTLAB_MODBUS_PORT"] = str(self.relays["modbus"].port)
        if "opcua" in self.relays:
            variables["IIOTLAB_OPCUA_URL"] = _moved(
                variables["IIOTLAB_OPCUA_URL"], host, self.relays["opcua"].port
            )
        if "platform" in self.relays:
            variables["IIOTLAB_PLATFORM_URL"] = _moved(
                variables["IIOTLAB_PLATFORM_URL"], host, self.relays["platform"].port
            )
        if env.line:
            variables["IIOTLAB_LINE"] = LINE_NAME
        return variables

    def gateway_env_text(self) -> str:
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.gateway_env().items())

    def datasheet(self) -> dict[str, Any]:
        """The candidate's datasheet, naming the public addresses."""
        sheet: Datasheet | None = self.env.datasheet
        assert sheet is not None
        data: dict[str, Any] = json.loads(sheet.model_dump_json(exclude_none=True))
        if isinstance(data.get("modbus"), dict):  # without Modbus served: its host, no port
            data["modbus"]["host"] = self.advertised
            if "modbus" in self.relays:
                data["modbus"]["port"] = self.relays["modbus"].port
        if "opcua" in self.relays and isinstance(data.get("opcua"), dict):
            data["opcua"]["endpoint"] = self.gateway_env()["IIOTLAB_OPCUA_URL"]
        return data

    @property
    def is_line(self) -> bool:
        return bool(self.env.line)

    def line_devices(self) -> list[str]:
        return [device.device for device in self.env.line]

    def line_manifest(self) -> dict[str, Any]:
        """The line manifest (IIOTLAB_LINE) naming the relays, each datasheet a file name
        (`<device>.json`) beside it, as the candidate downloads them into one folder."""
        devices = []
        for device in self.env.line:
            modbus = self.relays.get(f"modbus/{device.device}")
            opcua = self.relays.get(f"opcua/{device.device}")
            devices.append(
                {
                    "device": device.device,
                    "plant": device.entry.plant,
                    "modbus": {"host": self.advertised, "port": modbus.port} if modbus else None,
                    "opcua_url": _moved(str(device.sim.opcua_url), self.advertised, opcua.port)
                    if opcua
                    else None,
                    "datasheet": f"{device.device}.json",
                }
            )
        return {"devices": devices}

    def line_datasheet(self, name: str) -> dict[str, Any] | None:
        """A line device's datasheet naming the relays; None for no such device."""
        device = next((d for d in self.env.line if d.device == name), None)
        if device is None or device.datasheet is None:
            return None
        entry = next(e for e in self.line_manifest()["devices"] if e["device"] == name)
        data: dict[str, Any] = json.loads(device.datasheet.model_dump_json(exclude_none=True))
        if isinstance(data.get("modbus"), dict):
            data["modbus"].update(entry["modbus"] or {"host": self.advertised})
        if entry["opcua_url"] and isinstance(data.get("opcua"), dict):
            data["opcua"]["endpoint"] = entry["opcua_url"]
        return data

    def ca_file(self) -> Path | None:
        ca = self.env.broker_info.ca_file
        return Path(ca) if ca else None
