"""The edge gateway framework and the reference gateway.

Building blocks (each usable alone, e.g. in a lab's starter gateway):

- `load_gateway_config`, `GatewayConfig` (config.py, config_loader.py)
- `plan_reads`, `ReadItem`, `ReadBlock` (planner.py): coalesced Modbus reads
- `decode_block`, `decode_tag`, `encode_tag` (codec.py): tags <-> registers
- `ModbusSource`, `OpcuaSource` (sources/): devices -> cycles of values
- `ReportByException` (reporting.py): deadband and heartbeat
- `TransformSet` (transforms.py): moving average, RMS, rate of change, min/max/mean
- `StoreAndForwardBuffer` (buffer.py): the on-disk outbox
- `TelemetryPublisher` (publisher.py): buffer -> MQTT, PUBACK before delete
- `Gateway` (gateway.py): all of it wired together
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_gateway.buffer import BufferedMessage, StoreAndForwardBuffer
from edge_gateway.codec import decode_block, decode_tag, encode_tag
from edge_gateway.config import GatewayConfig, TagConfig
from edge_gateway.config_builders import config_from_datasheet, config_from_env, config_to_yaml
from edge_gateway.config_loader import load_gateway_config, parse_gateway_config
from edge_gateway.planner import ReadBlock, ReadItem, plan_reads
from edge_gateway.reporting import DeadbandRule, Report, ReportByException
from edge_gateway.sources.base import SourceCycle, WriteError
from edge_gateway.transforms import TransformSet

if TYPE_CHECKING:
    from edge_gateway.gateway import Gateway
    from edge_gateway.publisher import TelemetryPublisher
    from edge_gateway.sources.modbus import ModbusSource
    from edge_gateway.sources.opcua import OpcuaSource

_LAZY = {
    "Gateway": "edge_gateway.gateway",
    "TelemetryPublisher": "edge_gateway.publisher",
    "ModbusSource": "edge_gateway.sources.modbus",
    "OpcuaSource": "edge_gateway.sources.opcua",
}


def __getattr__(name: str) -> Any:
    # The heavy protocol libraries load only when their building block is used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_gateway' has no attribute {name!r}")


__all__ = [
    "BufferedMessage",
    "DeadbandRule",
    "Gateway",
    "GatewayConfig",
    "ModbusSource",
    "OpcuaSource",
    "ReadBlock",
    "ReadItem",
    "Report",
    "ReportByException",
    "SourceCycle",
    "StoreAndForwardBuffer",
    "TagConfig",
    "TelemetryPublisher",
    "TransformSet",
    "WriteError",
    "config_from_datasheet",
    "config_from_env",
    "config_to_yaml",
    "decode_block",
    "decode_tag",
    "encode_tag",
    "load_gateway_config",
    "parse_gateway_config",
    "plan_reads",
]
