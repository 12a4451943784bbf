"""Scenario engine: timed events from YAML, validated with file, line, key and value.

```yaml
events:
  - at: 5              # seconds after the simulation starts
    kind: sensor_stuck # see EVENT_KINDS
    device: tank-1     # optional: defaults to the first plant
    tag: level
    duration: 10
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iiotlab.errors import ConfigError
from iiotlab.registers import WORD_ORDERS

# kind -> (required keys, optional keys) besides at/kind/device
EVENT_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sensor_stuck": (("tag", "duration"), ()),
    "drift": (("tag", "duration", "rate"), ()),
    "spike": (("tag", "magnitude"), ("duration",)),
    "noise_burst": (("tag", "duration", "sigma"), ()),
    "modbus_link_down": (("duration",), ()),
    "plc_restart": ((), ("duration",)),
    "opcua_restart": ((), ()),
    "register_map_change": ((), ("shift", "word_order")),
    "operator_write": (("tag", "value"), ()),
    "constant_change": (("constant", "value", "duration"), ()),
}
_NUMBERS = ("at", "duration", "rate", "magnitude", "sigma")
SENSOR_FAULTS = ("sensor_stuck", "drift", "spike", "noise_burst")


@dataclass(frozen=True)
class ScenarioEvent:
    at_s: float
    kind: str
    device: str | None = None
    tag: str | None = None
    duration_s: float = 0.0
    magnitude: float = 0.0  # drift: rate per second; spike: added value; noise: sigma
    shift: int = 0  # register_map_change: every address moves by this many
    word_order: str | None = None  # register_map_change: new order of 32/64-bit values
    value: float | bool | None = None  # operator_write: the value; constant_change: new value
    constant: str | None = None  # constant_change: which process constant
    line: int | None = None

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"at_s": self.at_s}
        for key in ("tag", "duration_s", "magnitude", "shift", "word_order", "constant"):
            value = getattr(self, key)
            if value not in (None, 0, 0.0):
                detail[key] = value
        if self.value is not None:
            detail["value"] = self.value
        return detail


@dataclass(frozen=True)
class Scenario:
    events: tuple[ScenarioEvent, ...] = ()
    source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _fail(
    message: str, file: str, node: yaml.Node, key: str, value: object, expected: str
) -> ConfigError:
    return ConfigError(
        message, file=file, line=node.start_mark.line + 1, key=key, value=value, expected=expected
    )


def _scalar(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _event(node: yaml.Node, index: int, file: str) -> ScenarioEvent:
    where = f"events[{index}]"
    if not isinstance(node, yaml.MappingNode):
        raise _fail(
            "an event must be a mapping", file, node, where, _scalar(node), "keys at, kind, ..."
        )
    items = {k.value: (k, v) for k, v in node.value}
    kind_node = items.get("kind")
    kind = _scalar(kind_node[1]) if kind_node else None
    if kind not in EVENT_KINDS:
        raise _fail(
            "unknown event kind",
            file,
            kind_node[1] if kind_node else node,
            f"{where}.kind",
            kind,
            f"one of {', '.join(EVENT_KINDS)}",
        )
    required, optional = EVENT_KINDS[kind]
    allowed = {"at", "kind", "device", *required, *optional}
    for key, (key_node, _) in items.items():
        if key not in allowed:
            raise _fail(
                f"unknown key for a {kind} event",
                file,
                key_node,
                f"{where}.{key}",
                key,
                f"keys {', '.join(sorted(allowed))}",
            )
    for key in ("at", *required):
        if key not in items:
            raise _fail(
                f"a {kind} event needs '{key}'",
                file,
                node,
                f"{where}.{key}",
                None,
                f"keys {', '.join(sorted(allowed))}",
            )
    values = {
        key: _checked(key, _scalar(v), v, f"{where}.{key}", file) for key, (_, v) in items.items()
    }
    return ScenarioEvent(
        at_s=values["at"],
        kind=kind,
        device=values.get("device"),
        tag=values.get("tag"),
        duration_s=values.get("duration", 1.0 if kind == "spike" else 0.0),
        magnitude=values.get("rate", values.get("magnitude", values.get("sigma", 0.0))),
        shift=values.get("shift", 0),
        word_order=values.get("word_order"),
        value=values.get("value"),
        constant=values.get("constant"),
        line=node.start_mark.line + 1,
    )


def _checked(key: str, value: Any, node: yaml.Node, where: str, file: str) -> Any:
    if key in _NUMBERS:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _fail("not a number", file, node, where, value, "a number")
        if key in ("at", "duration", "sigma") and value < 0:
            raise _fail("must not be negative", file, node, where, value, "a number >= 0")
        return float(value)
    if key == "shift":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("not an integer", file, node, where, value, "an integer (registers)")
        return value
    if key == "word_order" and value not in WORD_ORDERS:
        raise _fail("unknown word order", file, node, where, value, " or ".join(WORD_ORDERS))
    if key == "value":
        if isinstance(value, bool):
            return value
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail("not a value", file, node, where, value, "a number or true/false")
        return float(value)
    if key in ("device", "tag", "constant") and not isinstance(value, str):
        raise _fail("not a name", file, node, where, value, "a device or tag name")
    return value


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Parse scenario YAML text; ConfigError names the file, line, key and value."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None
    if root is None:
        return Scenario(source=file)
    if isinstance(root, yaml.MappingNode):
        items = {k.value: (k, v) for k, v in root.value}
        for key, (key_node, _) in items.items():
            if key != "events":
                raise _fail("unknown top-level key", file, key_node, key, key, "'events'")
        root = items["events"][1] if "events" in items else yaml.SequenceNode("", [])
    if not isinstance(root, yaml.SequenceNode):
        raise _fail(
            "events must be a list", file, root, "events", _scalar(root), "a list of events"
        )
    events = [_event(node, i, file) for i, node in enumerate(root.value)]
    return Scenario(tuple(sorted(events, key=lambda e: e.at_s)), source=file)


def scenario_from_events(events: list[Mapping[str, Any]], file: str = "<lab>") -> Scenario:
    """Validate already-loaded events (e.g. a lab.yaml's scenario section)."""
    return parse_scenario(yaml.safe_dump({"events": events}), file)


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("scenario file not found", file=path) from None
    return parse_scenario(text, str(path))
