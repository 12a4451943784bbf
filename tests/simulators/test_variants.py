"""Per-student variants and the datasheet command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iiotlab.cli import build_app
from iiotlab.datasheet import Datasheet
from iiotlab.errors import VariantError
from simulators.variants import PLANTS, build_datasheet

pytestmark = pytest.mark.unit
SECRET = "test-secret"


def _map(datasheet: Datasheet) -> list[tuple[object, ...]]:
    return [(t.name, t.modbus, t.opcua) for t in datasheet.tags]


@pytest.mark.parametrize("plant", PLANTS)
def test_same_student_same_datasheet_other_students_differ(plant: str) -> None:
    first = build_datasheet(plant, "lab1", "alice", SECRET)
    assert first == build_datasheet(plant, "lab1", "alice", SECRET)
    others = [build_datasheet(plant, "lab1", f"s{i}", SECRET) for i in range(20)]
    maps = {json.dumps([str(m) for m in _map(d)]) for d in [first, *others]}
    assert len(maps) == 21
    assert build_datasheet(plant, "lab2", "alice", SECRET) != first
    assert _map(build_datasheet(plant, "lab1", "alice", "other-secret")) != _map(first)


@pytest.mark.parametrize("student", ["alice", "bob", "carol", "dave"])
def test_every_type_appears_and_unit_ids_are_distinct(student: str) -> None:
    sheets = [build_datasheet(p, "lab1", student, SECRET) for p in PLANTS]
    types = {t.modbus.type for d in sheets for t in d.tags if t.modbus}
    assert {
        "bool",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "float32",
        "float64",
        "string",
        "bits16",
    } <= types
    assert len({d.modbus.unit_id for d in sheets}) == len(PLANTS)


@pytest.mark.parametrize("plant", PLANTS)
def test_datasheet_is_complete_and_consistent(plant: str) -> None:
    sheet = build_datasheet(plant, "lab1", "erin", SECRET)
    assert sheet.device == f"{plant}-1" and 1 <= sheet.modbus.unit_id <= 247
    assert sheet.opcua.users and sheet.opcua.users[0]["password"]
    used: dict[tuple[str, int], str] = {}
    for tag in sheet.tags:
        assert tag.tolerance is not None and tag.tolerance >= 0
        assert tag.opcua is not None and tag.opcua.node_id.startswith("ns=2;s=")
        m = tag.modbus
        assert m is not None
        assert (m.table in ("coil", "discrete")) == (m.type == "bool")
        if tag.access == "rw":
            assert m.table in ("coil", "holding")
        width = m.length or {"float64": 4, "int32": 2, "uint32": 2, "float32": 2}.get(m.type, 1)
        for address in range(m.address, m.address + width):
            key = (m.table, address)
            if m.bit is None:
                assert key not in used, f"{tag.name} overlaps {used.get(key)}"
            used[key] = tag.name
    round_trip = Datasheet.model_validate_json(sheet.model_dump_json())
    assert round_trip == sheet


def test_unknown_plant_and_bad_names_say_what_to_use() -> None:
    with pytest.raises(VariantError, match="tank"):
        build_datasheet("mixer", "lab1", "alice", SECRET)
    with pytest.raises(VariantError, match="student"):
        build_datasheet("tank", "lab1", "bad name!", SECRET)


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
def test_datasheet_command(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IIOTLAB_COURSE_SECRET", SECRET)
    out = tmp_path / f"sheet.{fmt}"
    result = CliRunner().invoke(
        build_app(),
        [
            "datasheet",
            "--plant",
            "boiler",
            "--lab",
            "lab1",
            "--student",
            "alice",
            "--format",
            fmt,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    sheet = build_datasheet("boiler", "lab1", "alice", SECRET)
    if fmt == "json":
        assert Datasheet.model_validate_json(text) == sheet
        return
    assert "Holding registers" in text and "Word order" in text
    assert str(sheet.modbus.unit_id) in text
    assert sheet.tag("temperature").opcua.node_id in text  # type: ignore[union-attr]
    assert "exception 02" in text
