"""Vendor data: derived per plant and student, printed in the manual, served on 43 / MEI 14."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from raw_modbus import RawModbusConnection, parse_identification

from iiotlab.datasheet import Datasheet
from simulators.datasheet_render import render_html, render_markdown
from simulators.identity import PRODUCT_LINES
from simulators.modbus_server import ModbusPlcServer
from simulators.plants import plant_class
from simulators.runtime import LivePlant
from simulators.variants import PLANTS, build_datasheet

SECRET = "identity-secret"


@pytest.mark.unit
@pytest.mark.parametrize("plant", PLANTS)
def test_every_plant_names_its_vendor_and_students_get_their_own_unit(plant: str) -> None:
    sheet = build_datasheet(plant, "lab1", "alice", SECRET)
    identity = sheet.identity
    assert identity is not None
    assert identity == build_datasheet(plant, "lab1", "alice", SECRET).identity
    line = PRODUCT_LINES[plant]
    assert (identity.vendor_name, identity.vendor_url) == (line.vendor_name, line.vendor_url)
    assert identity.product_name == line.product_name
    assert identity.product_code.startswith(f"{line.code_prefix}-")
    assert identity.model_name == (sheet.model_extra or {})["model"]
    assert "pymodbus" not in identity.model_dump_json().lower()
    others = {
        (s.product_code, s.revision, s.model_name)
        for s in (build_datasheet(plant, "lab1", f"s{i}", SECRET).identity for i in range(20))
        if s is not None
    }
    assert len(others) == 20  # the seed varies order code, revision and model per student
    assert Datasheet.model_validate_json(sheet.model_dump_json()) == sheet


@pytest.mark.unit
def test_vendors_are_fictitious() -> None:
    assert all(line.vendor_url.endswith(".example") for line in PRODUCT_LINES.values())
    assert len({line.vendor_name for line in PRODUCT_LINES.values()}) == len(PRODUCT_LINES)


@pytest.mark.unit
@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_the_manual_lists_the_identification_objects(render: Callable[[Datasheet], str]) -> None:
    sheet = build_datasheet("compressor", "lab1", "alice", SECRET)
    identity = sheet.identity
    assert identity is not None
    text = render(sheet)
    assert "Device identification (function code 43 / MEI type 14)" in text
    for name in ("VendorName", "ProductCode", "MajorMinorRevision", "ProductName", "ModelName"):
        assert name in text
    for value in (identity.vendor_name, identity.product_code, identity.revision):
        assert value in text
    assert "exception 01" in text


@pytest.mark.integration
async def test_a_datasheet_without_vendor_data_still_never_says_pymodbus() -> None:
    sheet = build_datasheet("tank", "lab1", "alice", SECRET).model_copy(update={"identity": None})
    plant = plant_class("tank")({}, random.Random(1))
    server = ModbusPlcServer([(LivePlant(plant, "tank-1", []), sheet)])
    async with server:
        raw = await RawModbusConnection.open(server.port)
        try:
            reply = await raw.exchange(sheet.modbus.unit_id, b"\x2b\x0e\x01\x00")
        finally:
            await raw.close()
    identification = parse_identification(reply.pdu)
    assert identification.objects[0x00] == "iiotlab"
    assert identification.objects[0x01] == "tank-simulator"
    assert identification.objects[0x02].startswith("V")
