"""Pure parts of the OPC UA server: security settings, address-space layout, values, units."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua

from iiotlab.datasheet import Datasheet
from iiotlab.errors import ConfigError
from simulators.base import InterlockError, TagAccessError, TagDefinition, TagValueError
from simulators.opcua.address_space import from_variant, status_of, to_variant
from simulators.opcua.layout import plan_plant
from simulators.opcua.security import OpcuaSecurity, PlantUserManager
from simulators.opcua.units import eu_information, unit_id

pytestmark = pytest.mark.unit

LEVEL = TagDefinition("level", "m", "Level", "float", "r", (0.0, 5.0))
SPEED = TagDefinition("speed_sp", "%", "Speed", "float", "rw", (0.0, 100.0))
COUNT = TagDefinition("count", "", "Count", "counter")
METHODS = ("Start", "Stop", "ResetFault")


def datasheet(tags: list[dict[str, Any]], **opcua: Any) -> Datasheet:
    return Datasheet.model_validate(
        {
            "plant": "tank",
            "lab": "l",
            "student": "s",
            "modbus": {"unit_id": 1},
            "opcua": {"namespace_uri": "urn:test", **opcua},
            "tags": tags,
        }
    )


def test_security_rejects_unknown_policies_and_nobody_allowed() -> None:
    with pytest.raises(ConfigError, match="Basic256Sha256:SignAndEncrypt"):
        OpcuaSecurity(policies=("Basic256Sha256:Encrypt",))
    with pytest.raises(ConfigError, match="lets nobody in"):
        OpcuaSecurity(allow_anonymous=False)
    security = OpcuaSecurity(policies=("Basic256Sha256:Sign",), users={"a": "b"})
    assert security.allows("Basic256Sha256", "Sign")
    assert not security.allows("Basic256Sha256", "SignAndEncrypt")
    assert not security.allows("None", "None")


def test_user_manager_checks_passwords_and_anonymous() -> None:
    manager = PlantUserManager(OpcuaSecurity(users={"alice": "pw"}, allow_anonymous=False))
    user = manager.get_user(None, "alice", "pw")
    assert user is not None and user.name == "alice"
    assert manager.get_user(None, "alice", "wrong") is None
    assert manager.get_user(None, "bob", "pw") is None
    assert manager.get_user(None) is None
    assert PlantUserManager(OpcuaSecurity()).get_user(None) is not None


def test_layout_takes_ids_and_names_from_the_datasheet() -> None:
    sheet = datasheet(
        [
            {"name": "level", "opcua": {"node_id": "ns=2;s=Tk07.LEVEL", "browse_name": "LEVEL"}},
            {"name": "speed_sp", "opcua": {"node_id": "ns=2;s=Tk07.speedSp"}},
            {"name": "count"},  # Modbus only: not in the address space
        ]
    )
    layout = plan_plant("tank-1", (LEVEL, SPEED, COUNT), METHODS, sheet, namespace_index=2)
    assert layout.object_id == ua.NodeId("Tk07", 2, ua.NodeIdType.String)
    assert layout.browse_name == "Tk07"
    assert [(v.definition.name, v.browse_name) for v in layout.variables] == [
        ("level", "LEVEL"),
        ("speed_sp", "speedSp"),
    ]
    assert [node.to_string() for _, node in layout.methods] == [
        "ns=2;s=Tk07.Start",
        "ns=2;s=Tk07.Stop",
        "ns=2;s=Tk07.ResetFault",
    ]


def test_layout_serves_the_registered_namespace_index() -> None:
    sheet = datasheet(
        [{"name": "level", "opcua": {"node_id": "ns=2;s=Tank.Level"}}],
        object_node_id="ns=2;s=Tank",
        object_browse_name="MainTank",
    )
    layout = plan_plant("tank-1", (LEVEL,), METHODS, sheet, namespace_index=3)
    assert layout.object_id.to_string() == "ns=3;s=Tank"
    assert layout.browse_name == "MainTank"
    assert layout.variables[0].node_id.to_string() == "ns=3;s=Tank.Level"


def test_layout_errors_name_the_datasheet_key() -> None:
    unknown = datasheet([{"name": "volume", "opcua": {"node_id": "ns=2;s=T.V"}}])
    with pytest.raises(ConfigError, match=r"tags\[0\]\.name.*level"):
        plan_plant("tank-1", (LEVEL,), METHODS, unknown, namespace_index=2)
    garbled = datasheet([{"name": "level", "opcua": {"node_id": "Tank/Level"}}])
    with pytest.raises(ConfigError, match=r"tags\[0\]\.opcua\.node_id"):
        plan_plant("tank-1", (LEVEL,), METHODS, garbled, namespace_index=2)


@pytest.mark.parametrize(
    ("kind", "variant", "expected"),
    [
        ("float", ua.Variant(3, ua.VariantType.Int64), 3.0),
        ("float", ua.Variant(2.5, ua.VariantType.Float), 2.5),
        ("int", ua.Variant(7, ua.VariantType.Int16), 7),
        ("int", ua.Variant(7.5, ua.VariantType.Double), None),
        ("bool", ua.Variant(True, ua.VariantType.Boolean), True),
        ("bool", ua.Variant(1, ua.VariantType.Int32), None),
        ("string", ua.Variant("x", ua.VariantType.String), "x"),
        ("float", ua.Variant(True, ua.VariantType.Boolean), None),
    ],
)
def test_written_variants_map_to_tag_values(kind: Any, variant: ua.Variant, expected: Any) -> None:
    definition = TagDefinition("t", "", "", kind, "rw")
    assert from_variant(variant, definition) == expected


def test_values_become_typed_variants() -> None:
    assert to_variant(3, ua.VariantType.Double) == ua.Variant(3.0, ua.VariantType.Double)
    assert to_variant(2**32 + 5, ua.VariantType.UInt32).Value == 5
    assert to_variant(1, ua.VariantType.Boolean) == ua.Variant(True, ua.VariantType.Boolean)


def test_errors_map_to_status_codes() -> None:
    assert status_of(TagValueError("x")).name == "BadOutOfRange"
    assert status_of(TagAccessError("x")).name == "BadNotWritable"
    assert status_of(InterlockError("x")).name == "BadInvalidState"
    assert status_of(RuntimeError("x")).name == "BadInternalError"


def test_units_use_unece_codes() -> None:
    assert unit_id("MTR") == 5067858  # OPC UA Part 8 example for metre
    assert eu_information("°C").UnitId == unit_id("CEL")
    unknown = eu_information("furlongs")
    assert (unknown.UnitId, unknown.DisplayName.Text) == (-1, "furlongs")
