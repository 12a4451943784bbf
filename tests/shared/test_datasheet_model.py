"""The datasheet JSON model: a broken file names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iiotlab.datasheet import load_datasheet
from iiotlab.errors import ConfigError, RegisterCodecError
from iiotlab.registers import RegisterFormat, decode, encode

pytestmark = pytest.mark.unit

GOOD = {
    "plant": "tank",
    "lab": "edge-01",
    "student": "alice",
    "modbus": {"unit_id": 3},
    "opcua": {"namespace_uri": "urn:iiotlab:tank", "security": ["None"]},
    "tags": [
        {
            "name": "level",
            "unit": "m",
            "access": "r",
            "range": [0, 5],
            "modbus": {"table": "holding", "address": 17, "type": "float32", "word_order": "CDAB"},
            "opcua": {"node_id": "ns=2;s=Tank.Level"},
        }
    ],
}


def test_loads_a_good_datasheet(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(GOOD))
    sheet = load_datasheet(path)
    assert sheet.tag("level").modbus is not None
    assert sheet.tag("level").modbus.word_order == "CDAB"


def test_bad_word_order_names_file_and_key(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(GOOD))
    bad["tags"][0]["modbus"]["word_order"] = "ACBD"
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError) as info:
        load_datasheet(path)
    assert "ds.json" in str(info.value)
    assert "tags.0.modbus.word_order" in str(info.value)
    assert "ACBD" in str(info.value)


def test_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text('{\n "plant": "tank",\n oops\n}')
    with pytest.raises(ConfigError, match=r"ds.json:3"):
        load_datasheet(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_datasheet(tmp_path / "nope.json")


def test_codec_refuses_what_does_not_fit() -> None:
    with pytest.raises(RegisterCodecError, match="does not fit"):
        encode(70000, RegisterFormat("uint16"))
    with pytest.raises(RegisterCodecError, match="does not fit"):
        encode(5.0, RegisterFormat("int16", scale=0.0001))
    with pytest.raises(RegisterCodecError, match="word order"):
        RegisterFormat("float32", word_order="XYZW")
    with pytest.raises(RegisterCodecError, match="needs 2 registers"):
        decode([1], RegisterFormat("float32"))
    with pytest.raises(RegisterCodecError, match="outside"):
        decode([70000], RegisterFormat("uint16"))
    assert (
        decode(
            encode("PUMP-01", RegisterFormat("string", length=4)),
            RegisterFormat("string", length=4),
        )
        == "PUMP-01"
    )
