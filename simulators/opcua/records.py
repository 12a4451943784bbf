"""What an OPC UA client session asked the plant's server for, as plain records.

Kept apart from the server (simulators.opcua.sessions) so that the checks and the
observation read these records without importing asyncua (0.25 s of CPU to import).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncua import ua


def now_ms() -> int:
    return time.time_ns() // 1_000_000


MAX_ACTIVITY_RECORDS = 20_000  # per session and kind: a client polling at 10 Hz for 30 min


@dataclass(frozen=True)
class MonitoredItemRecord:
    """One item of a CreateMonitoredItems request as the server received it.

    deadband_type: "none", "absolute" or "percent" (no DataChangeFilter: "none").
    """

    ts_ms: int
    node_id: str
    attribute: int
    sampling_interval_ms: float
    deadband_type: str
    deadband_value: float


@dataclass
class OpcuaActivity:
    """What one session asked the server for, appended to as requests arrive.

    reads: (ts_ms, node id) of every Value-attribute read; other attributes (browse names,
    properties' metadata) are counted in other_reads. browses: Browse, BrowseNext and
    TranslateBrowsePathsToNodeIds calls.
    """

    monitored_items: list[MonitoredItemRecord] = field(default_factory=list)
    reads: list[tuple[int, str]] = field(default_factory=list)
    other_reads: int = 0
    browses: int = 0

    def add_monitored_items(self, params: ua.CreateMonitoredItemsParameters) -> None:
        stamp = now_ms()
        for item in params.ItemsToCreate[:MAX_ACTIVITY_RECORDS]:
            if len(self.monitored_items) >= MAX_ACTIVITY_RECORDS:
                return
            requested = item.RequestedParameters
            kind, value = _deadband(requested.Filter)
            self.monitored_items.append(
                MonitoredItemRecord(
                    stamp,
                    item.ItemToMonitor.NodeId.to_string(),
                    int(item.ItemToMonitor.AttributeId),
                    float(requested.SamplingInterval),
                    kind,
                    value,
                )
            )

    def add_reads(self, params: ua.ReadParameters) -> None:
        from simulators.opcua.ids import AttributeIds

        stamp = now_ms()
        for item in params.NodesToRead:
            if item.AttributeId != AttributeIds.Value:
                self.other_reads += 1
            elif len(self.reads) < MAX_ACTIVITY_RECORDS:
                self.reads.append((stamp, item.NodeId.to_string()))


def _deadband(filter_: object) -> tuple[str, float]:
    """The deadband of a monitoring filter. Duck-typed: the server decodes a client's filter
    into asyncua's generated DataChangeFilter, not the `ua.DataChangeFilter` clients build."""
    from asyncua import ua

    kind = getattr(filter_, "DeadbandType", None)
    value = getattr(filter_, "DeadbandValue", None)
    if kind is None or not isinstance(value, int | float):
        return "none", 0.0
    names = {int(ua.DeadbandType.Absolute): "absolute", int(ua.DeadbandType.Percent): "percent"}
    return names.get(int(kind), "none"), float(value)


@dataclass(frozen=True)
class OpcuaSessionRecord:
    """One client session as the server saw it.

    policy: short policy name ("None", "Basic256Sha256"); mode: "None", "Sign" or
    "SignAndEncrypt"; user: the authenticated username, None for anonymous.
    error: the status name when the server refused the session (only in rejected_sessions).
    """

    opened_ms: int
    client: str
    policy: str
    mode: str
    user: str | None
    closed_ms: int | None = None
    error: str | None = None
    activity: OpcuaActivity = field(default_factory=OpcuaActivity, compare=False)
