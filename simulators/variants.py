"""Per-student plant variants and their datasheets.

The seed (HMAC of the course secret, lab and student) picks everything a student must read
off the datasheet: register tables, addresses, types, word orders, scalings, the unit id,
OPC UA browse names and credentials, and the plant's process constants and fault times.
Each choice draws from its own stream (`variant_random(seed, purpose)`), so changing one
choice's code never shifts the others.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from iiotlab.datasheet import Datasheet
from iiotlab.registers import WORD_ORDERS
from iiotlab.variants import check_name, derive_seed, variant_random
from simulators.base import TagDefinition
from simulators.identity import derive_identity
from simulators.plants import plant_class
from simulators.register_layout import (
    STRING_REGISTERS,
    Encoding,
    Placement,
    TableAllocator,
    choose_encoding,
)

PLANTS: tuple[str, ...] = ("tank", "boiler", "packaging", "compressor", "energy")
OPCUA_POLICIES = ["None", "Basic256Sha256:Sign", "Basic256Sha256:SignAndEncrypt"]
_OBJECT_NAMES = {
    "tank": ("Tank", "TK", "Reservoir", "Vessel", "WaterTank"),
    "boiler": ("Boiler", "BLR", "SteamBoiler", "HotWell"),
    "packaging": ("PackLine", "Packer", "Line", "PKG"),
    "compressor": ("Compressor", "AirComp", "CMP", "Kompressor"),
    "energy": ("PowerMeter", "EnergyMeter", "PM", "Meter"),
}
_USERS = ("operator", "engineer", "maint", "scada", "hmi")


@dataclass(frozen=True)
class PlantVariant:
    """Everything the seed decides for one plant of one student."""

    seed: int
    datasheet: Datasheet
    constants: dict[str, float]


def device_name(plant: str) -> str:
    return f"{plant}-1"


def unit_id_for(plant: str, seed: int) -> int:
    """Distinct unit ids for the five plants of one student (served together by --plant all)."""
    ids = variant_random(seed, "unit-ids").sample(range(1, 248), len(PLANTS))
    return ids[PLANTS.index(plant)]


def _browse_name(tag: str, style: str) -> str:
    words = tag.split("_")
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "upper":
        return tag.upper()
    return tag


def _tolerance(tag: TagDefinition, encoding: Encoding) -> float:
    """Noise plus one tick of change (from the model) plus the register's resolution."""
    quantum = 0.0
    if encoding.type not in ("float32", "float64", "string", "bits16") and tag.kind == "float":
        quantum = encoding.scale / 2
    elif encoding.type == "float32":
        quantum = max(abs(tag.range[0]), abs(tag.range[1])) * 1e-6
    elif tag.name == "energy":
        quantum = encoding.scale
    return round(tag.tolerance + quantum, 6)


def _word_orders(seed: int, plant: str) -> tuple[str, str]:
    rng = variant_random(seed, f"word-orders:{plant}")
    return rng.choice(WORD_ORDERS), rng.choice(WORD_ORDERS)


def _place_bools(
    plant: str,
    bools: list[TagDefinition],
    allocator: TableAllocator,
    readonly_table: str,
    rng: random.Random,
) -> dict[str, Placement]:
    placements: dict[str, Placement] = {}
    packed = [t for t in bools if t.access == "r"] if rng.random() < 0.5 else []
    if packed:
        address = allocator.take(readonly_table, 1)
        bits = rng.sample(range(16), len(packed))
        for tag, bit in zip(packed, sorted(bits), strict=True):
            placements[tag.name] = Placement(readonly_table, address, "bits16", bit=bit)
    for tag in bools:
        if tag.name in placements:
            continue
        table = "coil" if tag.access == "rw" else "discrete"
        placements[tag.name] = Placement(table, allocator.take(table, 1), "bool")
    return placements


def _layout(plant: str, tags: tuple[TagDefinition, ...], seed: int) -> dict[str, Placement]:
    rng = variant_random(seed, f"register-map:{plant}")
    float_order, int_order = _word_orders(seed, plant)
    readonly_table = rng.choice(("input", "holding"))
    allocator = TableAllocator(rng)
    shuffled = list(tags)
    rng.shuffle(shuffled)
    placements = _place_bools(
        plant, [t for t in shuffled if t.kind == "bool"], allocator, readonly_table, rng
    )
    writable_first = sorted(
        (t for t in shuffled if t.kind != "bool"), key=lambda t: t.access != "rw"
    )
    for index, tag in enumerate(writable_first):
        encoding = choose_encoding(plant, tag, rng)
        table = "holding" if tag.access == "rw" else readonly_table
        if index and tag.access == "r" and writable_first[index - 1].access == "rw":
            allocator.skip(table, rng.randrange(0, 20))  # read-only block after a gap
        order = float_order if encoding.type.startswith("float") else int_order
        if encoding.type in ("int16", "uint16", "bits16", "string"):
            order = "ABCD"  # word order only applies to 32- and 64-bit values
        length = STRING_REGISTERS if encoding.type == "string" else None
        placement = Placement(
            table, 0, encoding.type, order, encoding.scale, encoding.offset, length
        )
        address = allocator.take(table, placement.count)
        placements[tag.name] = Placement(
            table, address, encoding.type, order, encoding.scale, encoding.offset, length
        )
    return placements


def _credentials(seed: int, plant: str) -> list[dict[str, str]]:
    rng = variant_random(seed, f"opcua-credentials:{plant}")
    alphabet = string.ascii_letters + string.digits
    password = "".join(rng.choice(alphabet) for _ in range(14))
    return [{"username": f"{rng.choice(_USERS)}{rng.randint(10, 99)}", "password": password}]


def build_variant(plant: str, lab: str, student: str, course_secret: str) -> PlantVariant:
    """The student's plant: datasheet plus the process constants the model runs with."""
    cls = plant_class(plant)
    check_name("lab", lab)
    check_name("student", student)
    seed = derive_seed(course_secret, lab, student)
    placements = _layout(plant, cls.tags, seed)
    naming = variant_random(seed, f"opcua-names:{plant}")
    object_name = f"{naming.choice(_OBJECT_NAMES[plant])}{naming.randint(1, 99):02d}"
    style = naming.choice(("pascal", "camel", "snake", "upper"))
    tags = []
    for definition in cls.tags:
        placement = placements[definition.name]
        encoding = Encoding(placement.type, placement.scale, placement.offset)
        browse = _browse_name(definition.name, style)
        tags.append(_tag_json(definition, placement, encoding, object_name, browse))
    constants = cls.random_constants(variant_random(seed, f"process:{plant}"))
    if plant == "energy":
        wrap = 2**32 * placements["energy"].scale
        # the counter rolls over 9-15 s into the run (per student), inside a short lab
        wrap_after_s = round(variant_random(seed, "energy-start").uniform(9.0, 15.0), 1)
        constants.update(energy_wrap_kwh=wrap, wrap_after_s=wrap_after_s)
        tags = [_energy_range(t, wrap, placements["energy"].scale) for t in tags]
    model = f"{object_name.upper()}-{seed % 9000 + 1000}"
    datasheet = Datasheet.model_validate(
        {
            "plant": plant,
            "lab": lab,
            "student": student,
            "device": device_name(plant),
            "model": model,
            "identity": derive_identity(plant, seed, model).model_dump(),
            "modbus": {"unit_id": unit_id_for(plant, seed)},
            "opcua": {
                "namespace_uri": f"urn:iiotlab:{lab}:{student}",
                "security": list(OPCUA_POLICIES),
                "object_node_id": f"ns=2;s={object_name}",
                "object_browse_name": object_name,
                "users": _credentials(seed, plant),
            },
            "word_orders": dict(zip(("float", "integer"), _word_orders(seed, plant), strict=True)),
            "tags": tags,
        }
    )
    return PlantVariant(seed, datasheet, constants)


def _energy_range(tag: dict[str, object], wrap: float, scale: float) -> dict[str, object]:
    if tag["name"] != "energy":
        return tag
    return {**tag, "range": [0.0, round(wrap - scale, 6)]}


def _tag_json(
    definition: TagDefinition,
    placement: Placement,
    encoding: Encoding,
    object_name: str,
    browse: str,
) -> dict[str, object]:
    modbus: dict[str, object] = {
        "table": placement.table,
        "address": placement.address,
        "type": placement.type,
        "word_order": placement.word_order,
        "scale": placement.scale,
        "offset": placement.offset,
    }
    if placement.length is not None:
        modbus["length"] = placement.length
    if placement.bit is not None:
        modbus["bit"] = placement.bit
    return {
        "name": definition.name,
        "unit": definition.unit,
        "description": definition.description,
        "access": definition.access,
        "kind": definition.kind,
        "range": None if definition.kind == "string" else list(definition.range),
        "tolerance": _tolerance(definition, encoding),
        "modbus": modbus,
        "opcua": {"node_id": f"ns=2;s={object_name}.{browse}", "browse_name": browse},
    }


def build_datasheet(plant: str, lab: str, student: str, course_secret: str) -> Datasheet:
    """The student's datasheet for one plant (pure: same inputs, same datasheet)."""
    return build_variant(plant, lab, student, course_secret).datasheet
