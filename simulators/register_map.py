"""A datasheet's Modbus register map: served snapshot -> table words, written words -> tags.

The map is pure (no sockets): the Modbus server asks it for the words of a request and
hands it written words. Addresses no tag covers are unmapped: any request touching one is
refused with exception 02, as most real PLCs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import IiotlabError, RegisterCodecError
from iiotlab.registers import RegisterFormat, decode, encode
from simulators.base import Value

BIT_TABLES = ("coil", "discrete")
WORD_TABLES = ("holding", "input")


class UnmappedAddressError(IiotlabError):
    """A request touches an address no tag occupies (Modbus exception 02)."""


class ReadOnlyError(IiotlabError):
    """A write to a read-only tag or table (Modbus exception 03)."""


@dataclass(frozen=True)
class MappedTag:
    name: str
    table: str
    address: int
    count: int
    format: RegisterFormat | None  # None for coils, discrete inputs and bits16 bits
    bit: int | None
    writable: bool
    integer: bool  # the engineering value is an int or bool, not a float


def _mapped(tag: TagSpec) -> MappedTag | None:
    modbus = tag.modbus
    if modbus is None:
        return None
    kind = getattr(tag, "kind", None)
    integer = kind in ("int", "counter", "bool") or (
        modbus.type in ("int16", "uint16", "int32", "uint32", "bits16")
        and modbus.scale == 1
        and modbus.offset == 0
        and kind != "float"
    )
    if modbus.table in BIT_TABLES or modbus.bit is not None:
        return MappedTag(
            tag.name, modbus.table, modbus.address, 1, None, modbus.bit, tag.access == "rw", True
        )
    fmt = RegisterFormat(
        modbus.type, modbus.word_order, modbus.scale, modbus.offset, modbus.length or 1
    )
    return MappedTag(
        tag.name, modbus.table, modbus.address, fmt.count, fmt, None, tag.access == "rw", integer
    )


class RegisterMap:
    """Tag layout of one device on the four Modbus tables."""

    def __init__(self, datasheet: Datasheet) -> None:
        self.datasheet = datasheet
        self.tags = [m for m in (_mapped(t) for t in datasheet.tags) if m is not None]
        # table -> address -> tags whose registers/bits cover it
        self._cover: dict[str, dict[int, list[MappedTag]]] = {
            t: {} for t in (*BIT_TABLES, *WORD_TABLES)
        }
        for tag in self.tags:
            for address in range(tag.address, tag.address + tag.count):
                self._cover[tag.table].setdefault(address, []).append(tag)

    def check(self, table: str, address: int, count: int) -> None:
        cover = self._cover[table]
        for a in range(address, address + count):
            if a not in cover:
                raise UnmappedAddressError(f"{table} address {a} is not mapped")

    def words(self, values: Mapping[str, Value]) -> dict[str, dict[int, int | bool]]:
        """Every mapped address of every table, encoded from the served values."""
        tables: dict[str, dict[int, int | bool]] = {t: {} for t in self._cover}
        for tag in self.tags:
            value = values.get(tag.name)
            table = tables[tag.table]
            if tag.format is None:
                on = bool(value)
                if tag.bit is None:
                    table[tag.address] = on
                else:
                    word = int(table.get(tag.address, 0))
                    table[tag.address] = word | (1 << tag.bit) if on else word
                continue
            try:
                raw = encode(_codable(value, tag), tag.format)
            except RegisterCodecError:
                raw = [0] * tag.count  # a value outside the register's span reads as 0
            for offset, word in enumerate(raw):
                table[tag.address + offset] = word
        return tables

    def writes(
        self,
        table: str,
        address: int,
        new: list[int] | list[bool],
        current: Mapping[int, int | bool],
    ) -> list[tuple[str, Value]]:
        """(tag, value) pairs a write request asks for; refuses read-only and unmapped."""
        self.check(table, address, len(new))
        touched: dict[str, MappedTag] = {}
        for a in range(address, address + len(new)):
            for tag in self._cover[table][a]:
                if not tag.writable:
                    raise ReadOnlyError(f"{table} address {a} ({tag.name}) is read-only")
                touched[tag.name] = tag
        written = dict(current)
        written.update({address + i: v for i, v in enumerate(new)})
        result: list[tuple[str, Value]] = []
        for tag in touched.values():
            if tag.format is None:
                result.append((tag.name, bool(written[tag.address])))
                continue
            raw = [int(written[tag.address + i]) for i in range(tag.count)]
            result.append((tag.name, decode(raw, tag.format)))
        return result


def _codable(value: Value | None, tag: MappedTag) -> float | int | str:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    return value
