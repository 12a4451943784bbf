"""Typed constructors of asyncua values.

asyncua annotates its fields with nominal int/str/datetime subclasses (ua.UInt32, ua.Int16,
ua.DateTime...) but its constants are plain ints, so strict mypy rejects the ordinary calls.
These helpers keep the casts in one place.
"""

from __future__ import annotations

import datetime

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError

__all__ = [
    "AttributeIds",
    "ObjectIds",
    "StatusCodes",
    "UaError",
    "data_value",
    "standard_node",
    "status",
    "string_node",
]


def status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def standard_node(identifier: int) -> ua.NodeId:
    """A node of namespace 0, e.g. standard_node(ObjectIds.AnalogItemType)."""
    return ua.NodeId(ua.Int32(identifier))


def string_node(identifier: str, namespace_index: int) -> ua.NodeId:
    return ua.NodeId(ua.String(identifier), ua.Int16(namespace_index), ua.NodeIdType.String)


def data_value(variant: ua.Variant | None, code: int, source_ms: int) -> ua.DataValue:
    """A value with its source timestamp (epoch ms) and the server timestamp now."""
    return ua.DataValue(
        variant,
        StatusCode=status(code),
        SourceTimestamp=ua.DateTime.fromtimestamp(source_ms / 1000, tz=datetime.UTC),
        ServerTimestamp=ua.DateTime.now(tz=datetime.UTC),
    )
