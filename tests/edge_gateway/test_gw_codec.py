"""Tags decode from a coalesced block for every type and word order; commands are checked."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_gateway.codec import decode_block, encode_tag, read_item
from edge_gateway.commands import CommandHandler
from edge_gateway.config import GatewayConfig, ModbusSourceConfig, TagConfig
from edge_gateway.planner import plan_reads
from iiotlab import registers

pytestmark = pytest.mark.unit

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def tag(name: str, address: int, type_: str, **extra: object) -> TagConfig:
    return TagConfig(name=name, source="plc", table="holding", address=address, type=type_, **extra)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    word_order=st.sampled_from(ORDERS),
    f32=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    f64=st.floats(-1e12, 1e12, allow_nan=False),
    i32=st.integers(-(2**31), 2**31 - 1),
    u32=st.integers(0, 2**32 - 1),
    i16=st.integers(-(2**15), 2**15 - 1),
    word=st.integers(0, 0xFFFF),
    text=st.text("ABCXYZ0129 -", max_size=8),
)
def test_block_decodes_every_type(
    word_order: str, f32: float, f64: float, i32: int, u32: int, i16: int, word: int, text: str
) -> None:
    tags = [
        tag("f32", 0, "float32", word_order=word_order),
        tag("f64", 2, "float64", word_order=word_order),
        tag("i32", 6, "int32", word_order=word_order),
        tag("u32", 8, "uint32", word_order=word_order),
        tag("i16", 10, "int16", scale=0.1, offset=5.0),
        tag("bit3", 11, "bits16", bit=3),
        tag("bit15", 11, "bits16", bit=15),
        tag("name", 12, "string", length=4),
        tag("flag", 16, "bool"),
    ]
    truth = {
        "f32": f32,
        "f64": f64,
        "i32": i32,
        "u32": u32,
        "i16": i16 * 0.1 + 5.0,
        "name": text,
        "flag": True,
    }
    image = [0] * 17
    for t in tags:
        if t.type == "bits16":
            continue
        words = encode_tag(t, truth[t.name])  # type: ignore[arg-type]
        image[t.address : t.address + len(words)] = words  # type: ignore[operator]
    image[11] = word
    (block,) = plan_reads(read_item(t) for t in tags)
    values = decode_block(block, image, {t.name: t for t in tags})
    assert values["f32"] == pytest.approx(f32, rel=1e-6, abs=1e-30)
    assert values["f64"] == f64
    assert values["i32"] == i32 and values["u32"] == u32
    assert values["i16"] == pytest.approx(truth["i16"])
    assert values["bit3"] == registers.bit_of(word, 3)
    assert values["bit15"] == registers.bit_of(word, 15)
    assert values["name"] == text
    assert values["flag"] is True


def test_bits16_write_keeps_the_other_bits() -> None:
    assert encode_tag(tag("b", 0, "bits16", bit=2), True, 0b1000_0001) == [0b1000_0101]
    assert encode_tag(tag("b", 0, "bits16", bit=0), False, 0b1000_0001) == [0b1000_0000]


def test_undecodable_registers_give_none() -> None:
    t = tag("f", 0, "float32")
    (block,) = plan_reads([read_item(t)])
    assert decode_block(block, [0x7FC0, 0], {"f": t})["f"] is not None  # NaN decodes
    assert math.isnan(float(decode_block(block, [0x7FC0, 0], {"f": t})["f"]))  # type: ignore[arg-type]


def command_handler() -> CommandHandler:
    config = GatewayConfig(
        device="tank-1",
        sources={"plc": ModbusSourceConfig()},
        tags=[
            tag("level", 0, "float32"),
            tag("speed_sp", 2, "int16", writable=True, range=(0, 100)),
            tag("run", 3, "bits16", bit=1, writable=True),
        ],
    )
    return CommandHandler(config, {})


def test_command_refusals_say_why() -> None:
    handler = command_handler()
    assert "not writable" in (handler.refusal("level", 1.0) or "")
    assert "unknown metric" in (handler.refusal("nope", 1.0) or "")
    assert "outside the range [0.0, 100.0]" in (handler.refusal("speed_sp", 150) or "")
    assert "takes a number" in (handler.refusal("speed_sp", "fast") or "")
    assert "true or false" in (handler.refusal("run", 7) or "")
    assert handler.refusal("speed_sp", 42.5) is None
    assert handler.refusal("run", True) is None


async def test_commands_are_acked_even_when_malformed() -> None:
    handler = command_handler()
    ack = await handler.handle(b'{"v":1,"id":"c1","metric":"level","value":2.0}')
    assert ack is not None and not ack.ok and ack.id == "c1" and "not writable" in str(ack.error)
    bad = await handler.handle(b'{"v":1,"id":"c2","metric":"speed_sp"}')
    assert bad is not None and not bad.ok and "value" in str(bad.error)
    assert await handler.handle(b"not json") is None
    no_source = await handler.handle(b'{"v":1,"id":"c3","metric":"speed_sp","value":5}')
    assert no_source is not None and "not running" in str(no_source.error)
