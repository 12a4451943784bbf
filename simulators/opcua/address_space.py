"""The plants in the address space: build nodes, publish snapshots, serve writes and calls."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server

from iiotlab.errors import IiotlabError
from simulators.base import (
    InterlockError,
    PlantRuntime,
    TagAccessError,
    TagDefinition,
    TagValueError,
    Value,
)
from simulators.opcua.ids import (
    AttributeIds,
    ObjectIds,
    StatusCodes,
    data_value,
    standard_node,
    status,
)
from simulators.opcua.layout import VARIANT_TYPES, PlantLayout, child_id
from simulators.opcua.sessions import now_ms
from simulators.opcua.units import eu_information

_logger = logging.getLogger(__name__)

_DATA_TYPES: dict[ua.VariantType, int] = {
    ua.VariantType.Double: ObjectIds.Double,
    ua.VariantType.Int32: ObjectIds.Int32,
    ua.VariantType.UInt32: ObjectIds.UInt32,
    ua.VariantType.Boolean: ObjectIds.Boolean,
    ua.VariantType.String: ObjectIds.String,
}
_INTEGER_TYPES = {
    ua.VariantType.SByte,
    ua.VariantType.Byte,
    ua.VariantType.Int16,
    ua.VariantType.UInt16,
    ua.VariantType.Int32,
    ua.VariantType.UInt32,
    ua.VariantType.Int64,
    ua.VariantType.UInt64,
}
_NUMBER_TYPES = _INTEGER_TYPES | {ua.VariantType.Float, ua.VariantType.Double}
_ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (TagValueError, StatusCodes.BadOutOfRange),
    (TagAccessError, StatusCodes.BadNotWritable),
    (InterlockError, StatusCodes.BadInvalidState),
    (IiotlabError, StatusCodes.BadInvalidArgument),
)
_MISSING = object()


@dataclass(frozen=True)
class TagNode:
    runtime: PlantRuntime
    definition: TagDefinition
    node_id: ua.NodeId
    variant_type: ua.VariantType


@dataclass(frozen=True)
class MethodNode:
    runtime: PlantRuntime
    object_id: ua.NodeId
    method: str


def to_variant(value: Value, variant_type: ua.VariantType) -> ua.Variant:
    """A plant value as the variable's OPC UA type (counters wrap at 2**32)."""
    if variant_type == ua.VariantType.Double:
        return ua.Variant(float(value), variant_type)
    if variant_type == ua.VariantType.Int32:
        return ua.Variant(int(value), variant_type)
    if variant_type == ua.VariantType.UInt32:
        return ua.Variant(int(value) % 2**32, variant_type)
    if variant_type == ua.VariantType.Boolean:
        return ua.Variant(bool(value), variant_type)
    return ua.Variant(str(value), variant_type)


def from_variant(variant: ua.Variant | None, definition: TagDefinition) -> Value | None:
    """A client's written value as the tag's Python type; None if the type does not fit."""
    if variant is None or variant.Value is None:
        return None
    raw, variant_type = variant.Value, variant.VariantType
    kind = definition.kind
    if kind == "float" and variant_type in _NUMBER_TYPES:
        return float(raw)
    if kind in ("int", "counter") and variant_type in _INTEGER_TYPES:
        return int(raw)
    if kind == "bool" and variant_type == ua.VariantType.Boolean:
        return bool(raw)
    if kind == "string" and variant_type == ua.VariantType.String:
        return str(raw)
    return None


def status_of(error: Exception) -> ua.StatusCode:
    for error_type, code in _ERROR_STATUS:
        if isinstance(error, error_type):
            return status(code)
    return status(StatusCodes.BadInternalError)


class PlantAddressSpace:
    """Plant nodes of one asyncua Server; implements sessions.PlantRequests."""

    def __init__(self) -> None:
        self._server: Server | None = None
        self._tags: dict[ua.NodeId, TagNode] = {}
        self._by_device: dict[str, list[TagNode]] = {}
        self._methods: dict[ua.NodeId, MethodNode] = {}
        self._last: dict[ua.NodeId, object] = {}

    def attach(self, server: Server) -> None:
        """Serve a freshly initialised server (start() builds a new one each time)."""
        self._server = server
        self._tags.clear()
        self._by_device.clear()
        self._methods.clear()
        self._last.clear()

    async def add_plant(self, runtime: PlantRuntime, layout: PlantLayout) -> None:
        server = self._require_server()
        objects = server.nodes.objects
        qname = ua.QualifiedName(layout.browse_name, layout.object_id.NamespaceIndex)
        plant_object = await objects.add_object(layout.object_id, qname)
        nodes = self._by_device.setdefault(layout.device, [])
        for variable in layout.variables:
            variant_type = VARIANT_TYPES[variable.definition.kind]
            node = await _add_variable(
                plant_object,
                variable.node_id,
                variable.browse_name,
                variable.definition,
                variant_type,
            )
            await _add_eu_properties(node, variable.node_id, variable.definition)
            tag = TagNode(runtime, variable.definition, variable.node_id, variant_type)
            self._tags[variable.node_id] = tag
            nodes.append(tag)
        for method, method_id in layout.methods:
            method_qname = ua.QualifiedName(method, method_id.NamespaceIndex)
            await plant_object.add_method(method_id, method_qname, _client_only, [], [])
            self._methods[method_id] = MethodNode(runtime, layout.object_id, method)
        await self.publish(layout.device, runtime.snapshot(), now_ms())

    async def publish(self, device: str, values: Mapping[str, Value], ts_ms: int) -> None:
        """Write a tick's values into the nodes; unchanged values are not rewritten."""
        for tag in self._by_device.get(device, ()):
            await self._push(tag, values.get(tag.definition.name, _MISSING), ts_ms)

    async def _push(self, tag: TagNode, value: object, ts_ms: int) -> None:
        previous = self._last.get(tag.node_id, _MISSING)
        if previous is not _MISSING and previous == value:
            return
        if value is _MISSING:
            data = data_value(None, StatusCodes.BadSensorFailure, ts_ms)
        else:
            try:
                variant = to_variant(value, tag.variant_type)  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):
                _logger.warning("%s: cannot serve %r as %s", tag.node_id, value, tag.variant_type)
                return
            data = data_value(variant, StatusCodes.Good, ts_ms)
        self._last[tag.node_id] = value
        await self._require_server().write_attribute_value(tag.node_id, data)

    async def write(self, item: ua.WriteValue, source: str) -> ua.StatusCode | None:
        tag = self._tags.get(item.NodeId)
        if tag is None or item.AttributeId != AttributeIds.Value:
            return None
        if tag.definition.access != "rw":
            return status(StatusCodes.BadNotWritable)
        value = from_variant(item.Value.Value if item.Value else None, tag.definition)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return status(StatusCodes.BadTypeMismatch)
        try:
            tag.runtime.write(tag.definition.name, value, source)
        except Exception as error:  # a client's bad write must never stop the server
            if not isinstance(error, IiotlabError):
                _logger.exception("write %s=%r by %s failed", tag.node_id, value, source)
            return status_of(error)
        current = tag.runtime.snapshot().get(tag.definition.name, _MISSING)
        await self._push(tag, current, now_ms())
        return status(StatusCodes.Good)

    async def call(self, request: ua.CallMethodRequest, source: str) -> ua.CallMethodResult | None:
        method = self._methods.get(request.MethodId)
        if method is None:
            return None
        result = ua.CallMethodResult()
        if request.ObjectId != method.object_id:
            result.StatusCode = status(StatusCodes.BadMethodInvalid)
        elif request.InputArguments:
            result.StatusCode = status(StatusCodes.BadTooManyArguments)
        else:
            try:
                method.runtime.call(method.method, source)
            except Exception as error:  # a refused command must never stop the server
                if not isinstance(error, IiotlabError):
                    _logger.exception("call %s by %s failed", method.method, source)
                result.StatusCode = status_of(error)
        return result

    def _require_server(self) -> Server:
        if self._server is None:
            raise RuntimeError("PlantAddressSpace used before attach()")
        return self._server


async def _client_only(parent: ua.NodeId, *args: object) -> ua.StatusCode:
    """Plant methods run through client sessions (PlantSession.call), which log a source."""
    return status(StatusCodes.BadUserAccessDenied)


async def _add_variable(
    parent: Node,
    node_id: ua.NodeId,
    browse_name: str,
    definition: TagDefinition,
    variant_type: ua.VariantType,
) -> Node:
    """A typed variable: AnalogItemType for numbers, BaseDataVariableType otherwise."""
    analog = definition.kind in ("float", "int", "counter")
    access = ua.AccessLevel.CurrentRead.mask
    if definition.access == "rw":
        access |= ua.AccessLevel.CurrentWrite.mask
    attributes = ua.VariableAttributes()
    attributes.DisplayName = ua.LocalizedText(browse_name)
    attributes.Description = ua.LocalizedText(definition.description)
    attributes.DataType = standard_node(_DATA_TYPES[variant_type])
    attributes.Value = to_variant(_zero(definition), variant_type)
    attributes.ValueRank = ua.ValueRank.Scalar
    attributes.AccessLevel = access
    attributes.UserAccessLevel = access
    attributes.MinimumSamplingInterval = 0.0
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = ua.QualifiedName(browse_name, node_id.NamespaceIndex)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent.nodeid
    item.ReferenceTypeId = standard_node(ObjectIds.HasComponent)
    type_id = ObjectIds.AnalogItemType if analog else ObjectIds.BaseDataVariableType
    item.TypeDefinition = standard_node(type_id)
    item.NodeAttributes = attributes
    results = await parent.session.add_nodes([item])
    results[0].StatusCode.check()
    return Node(parent.session, results[0].AddedNodeId)


async def _add_eu_properties(node: Node, node_id: ua.NodeId, definition: TagDefinition) -> None:
    """EURange for numbers; EngineeringUnits for numbers and any tag with a unit."""
    if definition.kind in ("float", "int", "counter"):
        low, high = definition.range
        await node.add_property(
            child_id(node_id, "EURange"),
            ua.QualifiedName("EURange", 0),
            ua.Range(Low=float(low), High=float(high)),
            datatype=standard_node(ObjectIds.Range),
        )
    if definition.unit or definition.kind in ("float", "int", "counter"):
        await node.add_property(
            child_id(node_id, "EngineeringUnits"),
            ua.QualifiedName("EngineeringUnits", 0),
            eu_information(definition.unit),
            datatype=standard_node(ObjectIds.EUInformation),
        )


def _zero(definition: TagDefinition) -> Value:
    zeros: dict[str, Value] = {"float": 0.0, "int": 0, "counter": 0, "bool": False, "string": ""}
    return zeros[definition.kind]
