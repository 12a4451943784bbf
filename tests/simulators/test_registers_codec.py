"""iiotlab.registers: every type and word order round-trips (property tests)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiotlab.errors import RegisterCodecError
from iiotlab.registers import WORD_ORDERS, RegisterFormat, bit_of, decode, encode, set_bit

pytestmark = pytest.mark.unit

_INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "bits16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
orders = st.sampled_from(WORD_ORDERS)


@pytest.mark.parametrize("type_", sorted(_INT_RANGES))
@given(data=st.data(), order=orders)
def test_integers_round_trip(type_: str, data: st.DataObject, order: str) -> None:
    low, high = _INT_RANGES[type_]
    value = data.draw(st.integers(low, high))
    fmt = RegisterFormat(type_, order)
    registers = encode(value, fmt)
    assert len(registers) == fmt.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, fmt) == value


@given(value=st.floats(width=32, allow_nan=False, allow_infinity=False), order=orders)
def test_float32_round_trips(value: float, order: str) -> None:
    fmt = RegisterFormat("float32", order)
    assert decode(encode(value, fmt), fmt) == value


@given(value=st.floats(allow_nan=False, allow_infinity=False), order=orders)
def test_float64_round_trips(value: float, order: str) -> None:
    fmt = RegisterFormat("float64", order)
    registers = encode(value, fmt)
    assert len(registers) == 4
    assert decode(registers, fmt) == value


@given(
    raw=st.integers(-(2**31), 2**31 - 1),
    scale=st.sampled_from((0.1, 0.01, 0.001, 10.0)),
    offset=st.sampled_from((0.0, -40.0, 100.0)),
    order=orders,
)
def test_scaled_integers_round_trip_within_half_a_step(
    raw: int, scale: float, offset: float, order: str
) -> None:
    fmt = RegisterFormat("int32", order, scale, offset)
    value = raw * scale + offset
    back = decode(encode(value, fmt), fmt)
    assert isinstance(back, float)
    assert abs(back - value) <= scale / 2 + 1e-9 * max(1.0, abs(value))


@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=16))
def test_strings_round_trip(text: str) -> None:
    fmt = RegisterFormat("string", length=8)
    assert decode(encode(text, fmt), fmt) == text.rstrip("\0")


@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15), on=st.booleans())
def test_bits_of_a_status_word(word: int, bit: int, on: bool) -> None:
    changed = set_bit(word, bit, on)
    assert bit_of(changed, bit) is on
    assert all(bit_of(changed, b) == bit_of(word, b) for b in range(16) if b != bit)


def test_word_orders_match_their_definition() -> None:
    a, b, c, d = struct.pack(">f", 1.5)  # bytes A B C D
    expected = {
        "ABCD": [a << 8 | b, c << 8 | d],
        "CDAB": [c << 8 | d, a << 8 | b],
        "BADC": [b << 8 | a, d << 8 | c],
        "DCBA": [d << 8 | c, b << 8 | a],
    }
    for order, words in expected.items():
        assert encode(1.5, RegisterFormat("float32", order)) == words


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (70000, RegisterFormat("int16")),
        (-1, RegisterFormat("uint32")),
        ("abc", RegisterFormat("float32")),
        ("x" * 17, RegisterFormat("string", length=8)),
    ],
)
def test_values_that_do_not_fit_are_refused(value: object, fmt: RegisterFormat) -> None:
    with pytest.raises(RegisterCodecError):
        encode(value, fmt)  # type: ignore[arg-type]
