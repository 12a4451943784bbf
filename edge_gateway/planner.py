"""Coalescing read planner: as few Modbus reads as the protocol and the device allow.

A Modbus request reads at most 125 registers or 2000 bits of one table. Adjacent tags of
a table share a request; a gap of unmapped addresses is bridged only up to `max_gap`,
because real PLCs answer "illegal data address" (exception 02) when a read touches an
address they do not map. Greedy extension over address-sorted tags is optimal here: each
block starts at the first tag not yet covered and takes every tag it can.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REGISTER_TABLES = ("holding", "input")
BIT_TABLES = ("coil", "discrete")
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


@dataclass(frozen=True)
class ReadItem:
    """One tag's place in a table: `count` registers (or bits) from `address`."""

    name: str
    table: str
    address: int
    count: int


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus request and the tags it answers."""

    table: str
    address: int
    count: int
    items: tuple[ReadItem, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_reads(
    items: Iterable[ReadItem],
    *,
    max_gap: int = 0,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
) -> list[ReadBlock]:
    """Blocks covering every item, per table, in address order."""
    by_table: dict[str, list[ReadItem]] = {}
    for item in items:
        if item.count < 1:
            raise ValueError(f"tag {item.name!r} occupies {item.count} addresses")
        by_table.setdefault(item.table, []).append(item)
    blocks: list[ReadBlock] = []
    for table in sorted(by_table):
        limit = max_bits if table in BIT_TABLES else max_registers
        blocks.extend(_plan_table(table, by_table[table], max_gap=max_gap, limit=limit))
    return blocks


def _plan_table(
    table: str, items: Sequence[ReadItem], *, max_gap: int, limit: int
) -> list[ReadBlock]:
    ordered = sorted(items, key=lambda item: (item.address, item.count))
    blocks: list[ReadBlock] = []
    members: list[ReadItem] = []
    start = end = 0
    for item in ordered:
        if item.count > limit:
            raise ValueError(
                f"tag {item.name!r} spans {item.count} addresses, over the {limit} one read allows"
            )
        item_end = item.address + item.count
        if members and item.address - end <= max_gap and max(end, item_end) - start <= limit:
            members.append(item)
            end = max(end, item_end)
            continue
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
        members, start, end = [item], item.address, item_end
    if members:
        blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks
