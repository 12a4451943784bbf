"""Tag <-> Modbus registers, on top of `iiotlab.registers` (the one codec of the project).

A tag's place in a read block is a `planner.ReadItem`; `decode_block` turns the
registers (or bits) of a block into engineering values, tag by tag. `BlockDecoder` does
the same from the bytes of a read answer, with one `struct` call over the whole block
for the tags whose layout struct reads directly (big-endian numbers), and `decode_tag`
for the rest: the values are the same, the per-tag Python overhead is gone.
"""

from __future__ import annotations

import struct
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
    block: ReadBlock,
    data: Sequence[int] | Sequence[bool],
    tags: dict[str, TagConfig],
    items: Sequence[ReadItem] | None = None,
) -> dict[str, MetricValue | None]:
    """Values of every tag in a block (or of `items`); None for a tag whose registers do
    not decode."""
    values: dict[str, MetricValue | None] = {}
    for item in block.items if items is None else items:
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


_STRUCT_CODES = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "float64": "d",
}
_INTEGER_TYPES = {"int16", "uint16", "int32", "uint32"}


def _struct_code(tag: TagConfig) -> str | None:
    """The struct code reading `tag` straight from big-endian bytes, if there is one."""
    code = _STRUCT_CODES.get(tag.type)
    if code is None or (tag.word_order != "ABCD" and code not in "hH"):
        return None
    return code


class BlockDecoder:
    """Engineering values of a block's tags from the data bytes of its read answer."""

    def __init__(self, block: ReadBlock, tags: dict[str, TagConfig]) -> None:
        self.block = block
        self._tags = tags
        self._bits = block.table in BIT_TABLES
        self._fast_names: list[str] = []
        self._scales: list[tuple[float, float, bool]] = []
        self._slow: list[ReadItem] = []
        layout, position = [">"], 0
        for item in block.items:
            tag = tags[item.name]
            code = None if self._bits else _struct_code(tag)
            offset = 2 * (item.address - block.address)
            if code is None or offset < position:
                self._slow.append(item)
                continue
            layout.append("x" * (offset - position) + code)
            position = offset + 2 * item.count
            self._fast_names.append(item.name)
            unscaled = tag.scale == 1 and tag.offset == 0
            self._scales.append((tag.scale, tag.offset, unscaled and tag.type in _INTEGER_TYPES))
        self._struct = struct.Struct("".join(layout))
        self._plain_floats = all(scale == (1, 0, False) for scale in self._scales) and all(
            tags[name].type in ("float32", "float64") for name in self._fast_names
        )

    def decode(self, data: bytes) -> dict[str, MetricValue | None]:
        if self._bits:
            return {
                item.name: bool(data[i >> 3] >> (i & 7) & 1) if (i >> 3) < len(data) else None
                for item in self.block.items
                for i in (item.address - self.block.address,)
            }
        values: dict[str, MetricValue | None]
        if len(data) < self._struct.size:
            values = dict.fromkeys(self._fast_names)
        else:
            raw = self._struct.unpack_from(data)
            if self._plain_floats:
                # raw * 1.0 + 0.0, as registers.decode computes it (turns -0.0 into 0.0)
                values = dict(zip(self._fast_names, [value + 0.0 for value in raw], strict=True))
            else:
                values = {
                    name: int(value) if integer else float(value) * scale + offset
                    for name, value, (scale, offset, integer) in zip(
                        self._fast_names, raw, self._scales, strict=True
                    )
                }
        if self._slow:
            words = struct.unpack(f">{len(data) // 2}H", data[: len(data) // 2 * 2])
            values.update(decode_block(self.block, words, self._tags, self._slow))
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
