"""Load the gateway YAML; every error names the file, line, key, bad value and expected form.

Pydantic reports where a value is wrong as a path of keys and indexes (`loc`). The YAML
node tree from `yaml.compose` keeps each node's position, so the path is walked through
the nodes to find the line the user must edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from edge_gateway.config import GatewayConfig, Location, reference_problems
from iiotlab.errors import ConfigError


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway YAML file, or raise ConfigError saying what to change."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "gateway config file not found", file=path, expected="an existing YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the gateway config: {exc.strerror}", file=path) from None
    return parse_gateway_config(text, file=path)


def parse_gateway_config(text: str, *, file: str | Path = "<string>") -> GatewayConfig:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"YAML syntax error: {exc.problem or exc}", file=file, line=line, expected="valid YAML"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "the file must be a YAML mapping of settings",
            file=file,
            line=1,
            value=type(data).__name__,
            expected="keys such as device, sources, tags, broker",
        )
    try:
        config = GatewayConfig.model_validate(data, context={"defer_references": True})
    except ValidationError as exc:
        raise _config_error(exc.errors()[0], root, file) from None
    for loc, message, value in reference_problems(config):
        raise ConfigError(
            message, file=file, line=line_of(root, loc), key=_dotted(loc), value=value
        )
    return config


def _config_error(error: ErrorDetails, root: yaml.Node | None, file: str | Path) -> ConfigError:
    loc = _clean_loc(error["loc"])
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        return ConfigError(
            "unknown key",
            file=file,
            line=line_of(root, loc),
            key=_dotted(loc),
            value=loc[-1] if loc else None,
            expected=f"one of the keys documented in docs/gateway.md under '{_dotted(loc[:-1])}'"
            if len(loc) > 1
            else "a top-level key documented in docs/gateway.md",
        )
    if kind == "missing":
        return ConfigError(
            "required key is missing",
            file=file,
            line=line_of(root, loc[:-1]),
            key=_dotted(loc),
            expected=f"'{loc[-1]}' to be set",
        )
    expected = ctx.get("expected")
    message = error["msg"]
    if kind == "literal_error" and expected is not None:
        message = "value is not allowed"
        expected = f"one of {expected}"
    elif expected is None and message.startswith("Input should be "):
        expected = message.removeprefix("Input should be ").split(",")[0]
        message = "wrong value"
    message = message.removeprefix("Value error, ")
    return ConfigError(
        message,
        file=file,
        line=line_of(root, loc),
        key=_dotted(loc),
        value=error.get("input") if not isinstance(error.get("input"), dict) else None,
        expected=str(expected) if expected is not None else None,
    )


def _clean_loc(loc: tuple[int | str, ...]) -> Location:
    # A discriminated union adds its tag ("modbus") to the path after the source name,
    # and wrapped validators add names like "function-after[...]"; neither is in the file.
    parts = [part for part in loc if not (isinstance(part, str) and "[" in part)]
    if len(parts) >= 3 and parts[0] == "sources" and parts[2] in ("modbus", "opcua"):
        del parts[2]
    return tuple(parts)


def _dotted(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(root: yaml.Node | None, loc: Location) -> int | None:
    """1-based line of the key (or list item) at `loc`; for a missing key, its parent's."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        step = _child(node, part)
        if step is None:
            break
        node, line = step[0], step[1] + 1
    return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return value_node, key_node.start_mark.line
        return None
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        item = node.value[part]
        return item, item.start_mark.line
    return None
