"""Modbus register codec: engineering values <-> 16-bit registers, per the datasheet.

Word orders name the byte layout of a 32-bit value whose big-endian bytes are A B C D:
ABCD = [AB, CD] (big-endian), CDAB = [CD, AB] (word swap), BADC = [BA, DC] (byte swap),
DCBA = [DC, BA] (little-endian). 64-bit values extend the same rule to eight bytes:
CDAB reverses the word order, BADC swaps bytes inside each word, DCBA reverses all bytes.
Strings take two ASCII characters per register, high byte first, NUL padded.
engineering = raw * scale + offset.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from iiotlab.errors import RegisterCodecError

_STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "bits16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}
_INTEGER = {"int16", "uint16", "bits16", "int32", "uint32"}
WORD_ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
REGISTER_TYPES = ("int16", "uint16", "bits16", "int32", "uint32", "float32", "float64", "string")


@dataclass(frozen=True)
class RegisterFormat:
    """How one tag sits in registers."""

    type: str
    word_order: str = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int = 1  # registers of a string

    def __post_init__(self) -> None:
        if self.type not in REGISTER_TYPES:
            raise RegisterCodecError(
                f"type {self.type!r} has no register form; use one of {', '.join(REGISTER_TYPES)}"
            )
        if self.word_order not in WORD_ORDERS:
            raise RegisterCodecError(
                f"word order {self.word_order!r} is not one of {', '.join(WORD_ORDERS)}"
            )
        if self.scale == 0 or not math.isfinite(self.scale):
            raise RegisterCodecError(f"scale {self.scale!r} must be a finite non-zero number")

    @property
    def count(self) -> int:
        """Number of 16-bit registers the tag occupies."""
        if self.type == "string":
            return self.length
        return struct.calcsize(_STRUCT[self.type]) // 2


def _order_bytes(data: bytes, word_order: str) -> bytes:
    if word_order == "ABCD" or len(data) == 2:  # word order applies to 32/64-bit only
        return data
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "CDAB":
        words.reverse()
    elif word_order == "BADC":
        words = [w[::-1] for w in words]
    else:  # DCBA
        return data[::-1]
    return b"".join(words)


def _to_registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _from_registers(registers: list[int]) -> bytes:
    for value in registers:
        if not 0 <= value <= 0xFFFF:
            raise RegisterCodecError(f"register value {value} is outside 0..65535")
    return b"".join(value.to_bytes(2, "big") for value in registers)


def encode(value: float | int | str, fmt: RegisterFormat) -> list[int]:
    """Engineering value -> registers. RegisterCodecError if it does not fit."""
    if fmt.type == "string":
        if not isinstance(value, str):
            raise RegisterCodecError(f"a string tag needs text, got {value!r}")
        raw_text = value.encode("ascii", errors="replace")
        if len(raw_text) > fmt.length * 2:
            raise RegisterCodecError(
                f"text of {len(raw_text)} characters does not fit {fmt.length} registers"
            )
        return _to_registers(raw_text.ljust(fmt.length * 2, b"\0"))
    if isinstance(value, str):
        raise RegisterCodecError(f"a {fmt.type} tag needs a number, got {value!r}")
    raw: float | int = (float(value) - fmt.offset) / fmt.scale
    if fmt.type in _INTEGER:
        if not math.isfinite(raw):
            raise RegisterCodecError(f"{value!r} is not a finite number")
        raw = round(raw)
    try:
        data = struct.pack(_STRUCT[fmt.type], raw)
    except (struct.error, OverflowError):
        raise RegisterCodecError(
            f"{value!r} (raw {raw!r}) does not fit a {fmt.type} with scale {fmt.scale} "
            f"and offset {fmt.offset}"
        ) from None
    return _to_registers(_order_bytes(data, fmt.word_order))


def decode(registers: list[int], fmt: RegisterFormat) -> float | int | str:
    """Registers -> engineering value (int for unscaled integer types)."""
    if len(registers) != fmt.count:
        raise RegisterCodecError(f"a {fmt.type} needs {fmt.count} registers, got {len(registers)}")
    data = _from_registers(registers)
    if fmt.type == "string":
        return data.rstrip(b"\0").decode("ascii", errors="replace")
    (raw,) = struct.unpack(_STRUCT[fmt.type], _order_bytes(data, fmt.word_order))
    if fmt.type in _INTEGER and fmt.scale == 1 and fmt.offset == 0:
        return int(raw)
    return float(raw) * fmt.scale + fmt.offset


def bit_of(register: int, bit: int) -> bool:
    """One bit of a bit-packed status word (bit 0 = least significant)."""
    return bool((register >> bit) & 1)


def set_bit(register: int, bit: int, on: bool) -> int:
    return register | (1 << bit) if on else register & ~(1 << bit) & 0xFFFF
