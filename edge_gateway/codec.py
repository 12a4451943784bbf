"""Tag <-> Modbus registers, on top of `iiotlab.registers` (the one codec of the project).

A tag's place in a read block is a `planner.ReadItem`; `decode_block` turns the
registers (or bits) of a block into engineering values, tag by tag.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_gateway.config import TagConfig
from edge_gateway.planner import BIT_TABLES, ReadBlock, ReadItem
from iiotlab import registers
from iiotlab.errors import RegisterCodecError
from iiotlab.payloads import MetricValue


def register_format(tag: TagConfig) -> registers.RegisterFormat:
    kind = "uint16" if tag.type == "bool" else tag.type
    return registers.RegisterFormat(
        type=kind,
        word_order=tag.word_order,
        scale=tag.scale,
        offset=tag.offset,
        length=tag.length or 1,
    )


def address_count(tag: TagConfig) -> int:
    """Registers (or bits, for coils and discrete inputs) the tag occupies."""
    if tag.table in BIT_TABLES:
        return 1
    return register_format(tag).count


def read_item(tag: TagConfig) -> ReadItem:
    if tag.table is None or tag.address is None:
        raise ValueError(f"tag {tag.name!r} has no Modbus table and address")
    return ReadItem(tag.name, tag.table, tag.address, address_count(tag))


def decode_tag(tag: TagConfig, words: Sequence[int]) -> MetricValue:
    """Engineering value of a register tag from exactly its registers."""
    if tag.type == "bool":
        return words[0] != 0
    if tag.type == "bits16" and tag.bit is not None:
        return registers.bit_of(words[0], tag.bit)
    return registers.decode(list(words), register_format(tag))


def decode_block(
    block: ReadBlock, data: Sequence[int] | Sequence[bool], tags: dict[str, TagConfig]
) -> dict[str, MetricValue | None]:
    """Values of every tag in a block; None for a tag whose registers do not decode."""
    values: dict[str, MetricValue | None] = {}
    for item in block.items:
        start = item.address - block.address
        if block.table in BIT_TABLES:
            values[item.name] = bool(data[start])
            continue
        try:
            values[item.name] = decode_tag(
                tags[item.name], [int(w) for w in data[start : start + item.count]]
            )
        except RegisterCodecError:
            values[item.name] = None
    return values


def encode_tag(tag: TagConfig, value: MetricValue, current_word: int | None = None) -> list[int]:
    """Registers to write for `value`; a bits16 tag needs the word's current value."""
    if tag.type == "bool":
        return [1 if _as_bool(value) else 0]
    if tag.type == "bits16" and tag.bit is not None:
        if current_word is None:
            raise RegisterCodecError("writing one bit needs the status word's current value")
        return [registers.set_bit(current_word, tag.bit, _as_bool(value))]
    if isinstance(value, bool):
        value = int(value)
    return registers.encode(value, register_format(tag))


def _as_bool(value: MetricValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise RegisterCodecError(f"a bool tag needs true/false (or 0/1), got {value!r}")
