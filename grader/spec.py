"""Lab specs: labs/<id>/lab.yaml loaded into frozen models.

Errors name the file, the key and the line: the YAML is composed into nodes first so a
validation error's location can be mapped back to the line it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from grader.checks.registry import CheckRegistry, ResolvedCheck
from grader.sandbox.limits import RunLimits
from iiotlab.errors import ConfigError

if TYPE_CHECKING:
    from simulators.scenario import ScenarioEvent

Track = Literal["network", "edge", "platform", "security", "integration"]
ScenarioAction = Literal[
    "broker_outage", "plc_outage", "gateway_kill", "gateway_restart", "plant_event"
]

POSITIONS: dict[int, str] = {
    1: "industrial network engineer",
    2: "identifier resolution R&D engineer",
    3: "identifier resolution integration engineer",
    4: "edge computing engineer",
    5: "platform architect",
    6: "platform development engineer",
    7: "industrial APP development engineer",
    8: "platform operations engineer",
    10: "industrial big data engineer",
    11: "security architect",
    12: "security engineer",
    13: "solution architect",
    14: "implementation engineer",
    15: "system integration engineer",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bilingual(_Frozen):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class BrokerSpec(_Frozen):
    """The MQTT broker the grader starts for the lab."""

    kind: Literal["embedded", "mosquitto"] = "embedded"
    auth: bool = True  # users for the student's tenant and the grader's observer
    tls: bool = False
    from_submission: str | None = Field(
        default=None,
        description="file in the submission holding the student's broker policy (security labs)",
    )
    submission_conf: bool = Field(
        default=False,
        description="run the submission's own mosquitto.conf, ACL and password file on the "
        "real Mosquitto (kind: mosquitto; grader/mosquitto_submission.py)",
    )

    @model_validator(mode="after")
    def _submission_conf_needs_mosquitto(self) -> BrokerSpec:
        if self.submission_conf and (self.kind != "mosquitto" or self.from_submission):
            raise ValueError("submission_conf: true needs kind: mosquitto and no from_submission")
        return self


class OpcuaSpec(_Frozen):
    enabled: bool = True
    policies: tuple[str, ...] = ("None", "Basic256Sha256:Sign", "Basic256Sha256:SignAndEncrypt")
    allow_anonymous: bool = True


class ScenarioStep(_Frozen):
    at: float = Field(ge=0, description="seconds after the gateway starts")
    action: ScenarioAction
    duration: float = Field(default=0.0, ge=0)
    event: dict[str, Any] = Field(default_factory=dict)  # plant_event: passed to the simulator
    device: str | None = Field(
        default=None, description="multi-plant labs: the device a plc_outage or plant_event hits"
    )


class PlantEntry(_Frozen):
    """One device of a multi-plant lab's line: its own simulator and per-student variant."""

    plant: Literal["tank", "boiler", "packaging", "compressor", "energy"]
    device: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    protocol: Literal["modbus", "opcua", "both"] = "modbus"

    @property
    def modbus(self) -> bool:
        return self.protocol in ("modbus", "both")

    @property
    def opcua(self) -> bool:
        return self.protocol in ("opcua", "both")


class CheckSpec(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: str
    points: float = Field(gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    hint: Bilingual


class LabSpec(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    title: Bilingual
    summary: Bilingual
    track: Track
    positions: tuple[int, ...] = Field(min_length=1)
    plant: str
    device: str | None = None
    plants: tuple[PlantEntry, ...] = Field(
        default=(), description="multi-plant labs: one simulator per entry (docs/labs.md)"
    )
    duration_s: float = Field(gt=0, le=3600)
    startup_s: float = Field(default=3.0, ge=0, description="grace before checks count")
    broker: BrokerSpec = BrokerSpec()
    opcua: OpcuaSpec = OpcuaSpec()
    modbus: bool = True
    platform: bool = False
    modbus_proxy: bool = Field(
        default=False,
        description="the submission is a Modbus TCP proxy: it listens on IIOTLAB_PROXY_PORT",
    )
    modbus_tap: bool = Field(
        default=False,
        description="the grader's Modbus tap and plant-network traffic (grader/modbus_tap.py); "
        "the submission reads the tap's feed at IIOTLAB_TAP_URL",
    )
    limits: RunLimits = RunLimits()
    scenario: tuple[ScenarioStep, ...] = ()
    checks: tuple[CheckSpec, ...] = Field(min_length=1)
    directory: Path | None = Field(default=None, exclude=True)

    @field_validator("positions", mode="before")
    @classmethod
    def _positions(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        by_name = {name: number for number, name in POSITIONS.items()}
        out: list[object] = []
        for item in value:
            item = by_name.get(item, item) if isinstance(item, str) else item
            if isinstance(item, int) and item not in POSITIONS:
                raise ValueError(f"position {item} is not one of {sorted(POSITIONS)}")
            out.append(item)
        return out

    @model_validator(mode="before")
    @classmethod
    def _plant_from_line(cls, data: object) -> object:
        """A multi-plant lab's `plant` and `device` default to its first entry's."""
        if not isinstance(data, dict) or not isinstance(data.get("plants"), list):
            return data
        first = data["plants"][0] if data["plants"] else None
        if isinstance(first, dict):
            data = {**data}
            data.setdefault("plant", first.get("plant"))
            data.setdefault("device", first.get("device"))
        return data

    @model_validator(mode="after")
    def _proxy_needs_modbus(self) -> LabSpec:
        if self.modbus_proxy and not self.modbus:
            raise ValueError("modbus_proxy: true needs modbus: true (the proxy's upstream PLC)")
        return self

    @model_validator(mode="after")
    def _line_is_consistent(self) -> LabSpec:
        if not self.plants:
            if any(step.device for step in self.scenario):
                raise ValueError("a scenario step's device needs a multi-plant lab (plants:)")
            return self
        first = self.plants[0]
        if (self.plant, self.device_name) != (first.plant, first.device):
            raise ValueError(
                f"plant/device ({self.plant}, {self.device_name}) differ from the first entry "
                f"of plants ({first.plant}, {first.device}): leave them out or make them equal"
            )
        devices = [entry.device for entry in self.plants]
        for device in devices:
            if devices.count(device) > 1:
                raise ValueError(f"device {device!r} appears twice in plants")
        if self.modbus_proxy:
            raise ValueError("modbus_proxy labs serve one plant: remove plants or modbus_proxy")
        for step in self.scenario:
            if step.device is not None and step.device not in devices:
                raise ValueError(
                    f"scenario device {step.device!r} is not in plants ({', '.join(devices)})"
                )
        return self

    @property
    def is_line(self) -> bool:
        """A multi-plant lab: the gateway gets IIOTLAB_LINE."""
        return bool(self.plants)

    @property
    def publishes(self) -> bool:
        """Whether the submission publishes over MQTT: every lab but those judged on the
        platform's state alone (net-04: a provisioning script that talks to the devices
        and the platform's API)."""
        return not all(check.kind.startswith("platform_") for check in self.checks)

    @property
    def device_name(self) -> str:
        return self.device or f"{self.plant}-1"

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)


def _line_of(node: yaml.Node, loc: Sequence[int | str]) -> tuple[int | None, str | None]:
    """The 1-based line of the node at `loc`, and the last key found on the way."""
    line = node.start_mark.line + 1
    key: str | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    key = str(part)
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line, key
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line, key
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line, key
    return line, key


def _parse_yaml(path: Path) -> tuple[Any, yaml.Node]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("lab file not found", file=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", file=path, line=line) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError("a lab file must be a YAML mapping", file=path, line=1)
    return data, node


def _validation_error(
    path: Path, node: yaml.Node, exc: ValidationError, prefix: Sequence[int | str] = ()
) -> ConfigError:
    first = exc.errors()[0]
    loc = [*prefix, *(p for p in first["loc"] if isinstance(p, int | str))]
    line, _ = _line_of(node, loc)
    dotted = ".".join(str(p) for p in loc) or "(root)"
    if first["type"] == "extra_forbidden":
        return ConfigError("unknown key", file=path, line=line, key=dotted)
    value = first.get("input")
    return ConfigError(
        first["msg"],
        file=path,
        line=line,
        key=dotted,
        value=value if not isinstance(value, dict | list) else None,
    )


def _resolve_checks(
    path: Path, node: yaml.Node, lab: LabSpec, registry: CheckRegistry
) -> tuple[ResolvedCheck, ...]:
    resolved = []
    for index, spec in enumerate(lab.checks):
        kind = registry.get(spec.kind)
        if kind is None:
            line, _ = _line_of(node, ["checks", index, "kind"])
            raise ConfigError(
                "unknown check kind",
                file=path,
                line=line,
                key=f"checks.{index}.kind",
                value=spec.kind,
                expected="one of " + ", ".join(sorted(registry.names())),
            )
        try:
            params = kind.params.model_validate(spec.params)
        except ValidationError as exc:
            raise _validation_error(path, node, exc, ("checks", index, "params")) from None
        resolved.append(ResolvedCheck(spec, kind, params))
    ids = [c.id for c in lab.checks]
    for index, check_id in enumerate(ids):
        if ids.index(check_id) != index:
            line, _ = _line_of(node, ["checks", index, "id"])
            raise ConfigError(
                "duplicate check id",
                file=path,
                line=line,
                key=f"checks.{index}.id",
                value=check_id,
                expected="a unique id per check",
            )
    return tuple(resolved)


def _plant_events(path: Path, node: yaml.Node, lab: LabSpec) -> dict[int, ScenarioEvent]:
    """Each plant_event step as the simulator's event, checked now rather than mid-run."""
    from simulators.scenario import scenario_from_events

    events: dict[int, ScenarioEvent] = {}
    for index, step in enumerate(lab.scenario):
        if step.action != "plant_event":
            continue
        line, _ = _line_of(node, ["scenario", index, "event"])
        if not step.event:
            raise ConfigError(
                "a plant_event step needs an event",
                file=path,
                line=line,
                key=f"scenario.{index}.event",
                expected="e.g. {kind: spike, tag: level, magnitude: 2, duration_s: 3}",
            )
        try:
            (event,) = scenario_from_events([{"at": 0, **step.event}], str(path)).events
        except ConfigError as exc:
            raise ConfigError(
                f"bad plant_event: {exc}", file=path, line=line, key=f"scenario.{index}.event"
            ) from None
        events[index] = event
    return events


@dataclass(frozen=True)
class LabPlan:
    """A lab ready to run: its spec, its checks resolved, its plant events parsed."""

    lab: LabSpec
    checks: tuple[ResolvedCheck, ...]
    plant_events: Mapping[int, ScenarioEvent] = field(default_factory=dict)


def prepare_lab(path: str | Path, registry: CheckRegistry) -> LabPlan:
    """Load labs/<id>/lab.yaml (or its folder) and resolve it against `registry`."""
    path = Path(path)
    if path.is_dir():
        path = path / "lab.yaml"
    data, node = _parse_yaml(path)
    try:
        lab = LabSpec.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, node, exc) from None
    if lab.id != path.parent.name and path.parent.name != "":
        line, _ = _line_of(node, ["id"])
        raise ConfigError(
            "lab id differs from its folder name",
            file=path,
            line=line,
            key="id",
            value=lab.id,
            expected=repr(path.parent.name),
        )
    checks = _resolve_checks(path, node, lab, registry)
    events = _plant_events(path, node, lab)
    return LabPlan(lab.model_copy(update={"directory": path.parent}), checks, events)


def load_lab(path: str | Path, registry: CheckRegistry | None = None) -> LabSpec:
    """The LabSpec of labs/<id>/lab.yaml (or its folder), validated like prepare_lab."""
    from grader.checks.registry import default_registry

    return prepare_lab(path, registry or default_registry()).lab
