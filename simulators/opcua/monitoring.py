"""Monitored items without a deep copy per notification (asyncua server internals).

asyncua keeps, per monitored item, a `copy.deepcopy` of every value written to the node
(`MonitoredItemValues.set_current_datavalue`), to compare the next value with it. Profiled
with 5,300 monitored items on the five plants, that copy was 61 % of the simulator's CPU
(bench/opcua_notifications.py). Here every DataValue is a new object per write that
nobody changes afterwards: the simulator builds one per tick and per changed tag
(address_space.data_value) and a client's Write arrives as a freshly decoded one. The
values are scalars, immutable in Python. So a shallow copy of the DataValue (a new object,
sharing its immutable parts) keeps the comparison right at a small part of the cost.

`install()` replaces the method once per process and checks that asyncua still has it.
"""

from __future__ import annotations

import copy

from asyncua import ua
from asyncua.server import monitored_item_service

_INSTALLED = False


def _set_current_datavalue(
    self: monitored_item_service.MonitoredItemValues, cur_val: ua.DataValue
) -> None:
    self.old_dvalue = self.current_dvalue
    self.current_dvalue = copy.copy(cur_val)


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    values = monitored_item_service.MonitoredItemValues
    if not callable(getattr(values, "set_current_datavalue", None)):
        raise RuntimeError(
            "asyncua's MonitoredItemValues.set_current_datavalue is gone: "
            "simulators/opcua/monitoring.py needs updating for this asyncua version"
        )
    values.set_current_datavalue = _set_current_datavalue  # type: ignore[method-assign]
    _INSTALLED = True
