"""Where each plant's object, variables and methods sit in the address space (pure)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua

from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import ConfigError
from simulators.base import TagDefinition, ValueKind
from simulators.opcua.ids import UaError, string_node

_logger = logging.getLogger(__name__)

VARIANT_TYPES: dict[ValueKind, ua.VariantType] = {
    "float": ua.VariantType.Double,
    "int": ua.VariantType.Int32,
    "counter": ua.VariantType.UInt32,
    "bool": ua.VariantType.Boolean,
    "string": ua.VariantType.String,
}


@dataclass(frozen=True)
class VariableLayout:
    definition: TagDefinition
    node_id: ua.NodeId
    browse_name: str


@dataclass(frozen=True)
class PlantLayout:
    device: str
    object_id: ua.NodeId
    browse_name: str
    variables: tuple[VariableLayout, ...]
    methods: tuple[tuple[str, ua.NodeId], ...]  # (method name, node id)


def parse_node_id(text: str, key: str) -> ua.NodeId:
    try:
        return ua.NodeId.from_string(text)
    except (ValueError, UaError):
        raise ConfigError(
            "not an OPC UA node id",
            key=key,
            value=text,
            expected='a node id like "ns=2;s=Tank.Level"',
        ) from None


def in_namespace(node_id: ua.NodeId, namespace_index: int, key: str) -> ua.NodeId:
    """The node id in the registered namespace; warns when the datasheet says another."""
    if node_id.NamespaceIndex != namespace_index:
        _logger.warning(
            "%s: %s names namespace %d but the datasheet's namespace_uri has index %d; serving %d",
            key,
            node_id.to_string(),
            node_id.NamespaceIndex,
            namespace_index,
            namespace_index,
        )
    return ua.NodeId(node_id.Identifier, ua.Int16(namespace_index), node_id.NodeIdType)


def plan_plant(
    device: str,
    definitions: Sequence[TagDefinition],
    methods: Sequence[str],
    datasheet: Datasheet,
    namespace_index: int,
) -> PlantLayout:
    """Node ids and browse names from the datasheet; tags without an OPC UA node are skipped."""
    by_name = {definition.name: definition for definition in definitions}
    variables = []
    for position, spec in enumerate(datasheet.tags):
        if spec.opcua is None:
            continue
        key = f"tags[{position}].opcua.node_id"
        definition = by_name.get(spec.name)
        if definition is None:
            raise ConfigError(
                f"datasheet tag {spec.name!r} is not a tag of plant {datasheet.plant!r}",
                key=f"tags[{position}].name",
                value=spec.name,
                expected=f"one of {', '.join(sorted(by_name))}",
            )
        node_id = in_namespace(parse_node_id(spec.opcua.node_id, key), namespace_index, key)
        variables.append(VariableLayout(definition, node_id, _browse_name(spec, node_id)))
    object_id = _object_id(datasheet, variables, device, namespace_index)
    object_name = _object_browse_name(datasheet, object_id, device)
    method_ids = tuple((name, child_id(object_id, name)) for name in methods)
    return PlantLayout(device, object_id, object_name, tuple(variables), method_ids)


def _browse_name(spec: TagSpec, node_id: ua.NodeId) -> str:
    if spec.opcua is not None and spec.opcua.browse_name:
        return spec.opcua.browse_name
    if isinstance(node_id.Identifier, str):
        return node_id.Identifier.rsplit(".", 1)[-1]
    return spec.name


def _object_browse_name(datasheet: Datasheet, object_id: ua.NodeId, device: str) -> str:
    """opcua.object_browse_name if the datasheet has one, else the object's string id."""
    named = getattr(datasheet.opcua, "object_browse_name", None)
    if isinstance(named, str) and named:
        return named
    return object_id.Identifier if isinstance(object_id.Identifier, str) else device


def _object_id(
    datasheet: Datasheet, variables: Sequence[VariableLayout], device: str, namespace_index: int
) -> ua.NodeId:
    """datasheet.opcua.object_node_id, else the common "<Object>." prefix of the tags."""
    if datasheet.opcua.object_node_id:
        key = "opcua.object_node_id"
        return in_namespace(
            parse_node_id(datasheet.opcua.object_node_id, key), namespace_index, key
        )
    prefixes = {
        variable.node_id.Identifier.rsplit(".", 1)[0]
        for variable in variables
        if isinstance(variable.node_id.Identifier, str) and "." in variable.node_id.Identifier
    }
    if len(prefixes) == 1 and len(variables) > 0:
        return string_node(prefixes.pop(), namespace_index)
    return string_node(device, namespace_index)


def child_id(parent: ua.NodeId, name: str) -> ua.NodeId:
    """A string node id for a child: "<parent identifier>.<name>" in the parent's namespace."""
    return string_node(f"{parent.Identifier!s}.{name}", parent.NamespaceIndex)
