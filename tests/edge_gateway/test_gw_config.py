"""Gateway YAML: a valid file loads; every kind of mistake names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_gateway import GatewayConfig, config_to_yaml, load_gateway_config, parse_gateway_config
from edge_gateway.config_builders import config_from_env
from iiotlab.errors import ConfigError
from simulators.variants import build_datasheet

pytestmark = pytest.mark.unit

VALID = """\
tenant: alice
device: tank-1
heartbeat_s: 10
metrics_port: 0
broker:
  url: mqtt://gw:secret@127.0.0.1:1883
  client_id: gw-1
buffer:
  path: /tmp/gw.db
  capacity: 1000
  overflow: drop_newest
poll_groups:
  fast: 0.2
sources:
  plc:
    kind: modbus
    host: 127.0.0.1
    port: 5020
    unit_id: 3
    poll_interval_s: 1
  ua:
    kind: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    username: operator
    password: pw
tags:
  - name: level
    source: plc
    table: holding
    address: 17
    type: float32
    word_order: CDAB
    deadband: {absolute: 0.01}
    poll_group: fast
  - name: speed_sp
    source: plc
    table: holding
    address: 20
    type: int16
    scale: 0.1
    writable: true
    range: [0, 100]
  - name: temperature
    source: ua
    node_id: "ns=2;s=TK.Temperature"
    deadband: {percent: 1}
transforms:
  - name: level_avg_10s
    tag: level
    kind: moving_average
    window_s: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, VALID))
    assert config.device == "tank-1"
    assert config.tag("level").word_order == "CDAB"
    assert config.tag("level").deadband is not None
    assert config.tag("speed_sp").range == (0.0, 100.0)
    assert config.sources["ua"].kind == "opcua"
    assert config.buffer.overflow == "drop_newest"
    assert config.poll_groups == {"fast": 0.2}


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    assert caught.value.file == str(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_unknown_key_names_line_and_key(tmp_path: Path) -> None:
    text = VALID.replace("    unit_id: 3\n", "    unit_id: 3\n    unitid: 4\n")
    error = error_for(tmp_path, text)
    assert error.key == "sources.plc.unitid"
    assert error.line == text.splitlines().index("    unitid: 4") + 1
    assert "unknown key" in str(error)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID + "heartbeat: 5\n")
    assert error.key == "heartbeat"
    assert error.line == len(VALID.splitlines()) + 1


def test_wrong_type_names_value_and_expected(tmp_path: Path) -> None:
    text = VALID.replace("    address: 20\n", "    address: twenty\n")
    error = error_for(tmp_path, text)
    assert error.key == "tags[1].address"
    assert error.line == text.splitlines().index("    address: twenty") + 1
    assert error.value == "twenty"
    assert "integer" in str(error)


def test_bad_word_order_lists_the_allowed_ones(tmp_path: Path) -> None:
    text = VALID.replace("word_order: CDAB", "word_order: BACD")
    error = error_for(tmp_path, text)
    assert error.key == "tags[0].word_order"
    assert error.line == text.splitlines().index("    word_order: BACD") + 1
    assert error.value == "BACD"
    assert "'ABCD'" in str(error) and "'DCBA'" in str(error)


def test_missing_required_key_points_at_its_parent(tmp_path: Path) -> None:
    text = VALID.replace("  - name: speed_sp\n", "  - \n")
    error = error_for(tmp_path, text)
    assert error.key == "tags[1].name"
    assert "missing" in str(error)
    item_line = text.splitlines().index("  - ") + 1
    assert error.line in (item_line, item_line + 1)  # the list item (its first key)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value) and "not found" in str(caught.value)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    text = VALID.replace("  client_id: gw-1\n", "  client_id: [gw-1\n")
    error = error_for(tmp_path, text)
    assert "YAML syntax" in str(error)
    assert error.line is not None and error.line >= text.splitlines().index("  client_id: [gw-1")


def test_undefined_source_reference(tmp_path: Path) -> None:
    text = VALID.replace("    source: ua\n", "    source: scada\n")
    error = error_for(tmp_path, text)
    assert error.key == "tags[2].source"
    assert error.value == "scada"
    assert error.line == text.splitlines().index("    source: scada") + 1


def test_deadband_needs_exactly_one_kind(tmp_path: Path) -> None:
    text = VALID.replace("{absolute: 0.01}", "{absolute: 0.01, percent: 2}")
    error = error_for(tmp_path, text)
    assert error.key == "tags[0].deadband"
    assert "exactly one" in str(error)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_gateway_config("- a\n- b\n", file="x.yaml")


def test_from_datasheet_round_trips_through_yaml(tmp_path: Path) -> None:
    datasheet = build_datasheet("boiler", "lab1", "bob", "secret")
    config = GatewayConfig.from_datasheet(datasheet, broker_url="mqtt://127.0.0.1:1883")
    assert {tag.name for tag in config.tags} == {
        tag.name for tag in datasheet.tags if tag.modbus is not None
    }
    writable = {tag.name for tag in config.tags if tag.writable}
    assert writable == {tag.name for tag in datasheet.tags if tag.access == "rw" and tag.modbus}
    again = parse_gateway_config(config_to_yaml(config))
    assert again.tags == config.tags
    assert again.sources == config.sources


def test_config_from_env(tmp_path: Path) -> None:
    datasheet = build_datasheet("tank", "lab1", "carol", "secret")
    sheet = tmp_path / "ds.json"
    sheet.write_text(datasheet.model_dump_json())
    config = config_from_env(
        {
            "IIOTLAB_DATASHEET": str(sheet),
            "IIOTLAB_MODBUS_HOST": "127.0.0.1",
            "IIOTLAB_MODBUS_PORT": "15020",
            "IIOTLAB_MQTT_URL": "mqtt://u:p@127.0.0.1:11883",
            "IIOTLAB_TENANT": "carol",
            "IIOTLAB_DEVICE": "tank-1",
            "IIOTLAB_STATE_DIR": str(tmp_path / "state"),
        }
    )
    assert config.sources["plc"].port == 15020  # type: ignore[union-attr]
    assert config.tenant == "carol"
    assert config.buffer.path == tmp_path / "state" / "gateway-buffer.db"
    assert config.broker.url == "mqtt://u:p@127.0.0.1:11883"
    with pytest.raises(ConfigError, match="IIOTLAB_MODBUS_PORT"):
        config_from_env({"IIOTLAB_DATASHEET": str(sheet), "IIOTLAB_MODBUS_PORT": "x"})


def test_config_from_env_without_modbus_reads_opcua(tmp_path: Path) -> None:
    """A lab that serves only OPC UA (net-02) sets no IIOTLAB_MODBUS_*: the reference
    gateway must not read a PLC that is not there (it read 127.0.0.1:5020 before)."""
    datasheet = build_datasheet("boiler", "lab1", "carol", "secret")
    sheet = tmp_path / "ds.json"
    sheet.write_text(datasheet.model_dump_json())
    base = {
        "IIOTLAB_DATASHEET": str(sheet),
        "IIOTLAB_MQTT_URL": "mqtt://u:p@127.0.0.1:11883",
        "IIOTLAB_TENANT": "carol",
        "IIOTLAB_DEVICE": "boiler-1",
        "IIOTLAB_STATE_DIR": str(tmp_path / "state"),
        "IIOTLAB_OPCUA_URL": "opc.tcp://127.0.0.1:4840/iiotlab/",
    }
    opcua_only = config_from_env(base)
    assert set(opcua_only.sources) == {"opcua"}
    assert {tag.source for tag in opcua_only.tags} == {"opcua"}
    both = config_from_env(base | {"IIOTLAB_MODBUS_PORT": "15020"})
    assert "plc" in both.sources and "plc" in {tag.source for tag in both.tags}


def test_overrides_set_heartbeat_and_deadbands_on_the_named_tags() -> None:
    from edge_gateway.config import Deadband, GatewayConfig
    from edge_gateway.config_builders import parse_deadband, with_overrides

    config = GatewayConfig.model_validate(
        {
            "device": "d",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "sources": {"plc": {"kind": "modbus", "host": "127.0.0.1", "port": 502}},
            "tags": [
                {"name": n, "source": "plc", "table": "holding", "address": i, "type": "int16"}
                for i, n in enumerate(("a", "b"))
            ],
        }
    )
    changed = with_overrides(config, heartbeat_s=5, deadbands=["a=0.5", "b = 2 %"])
    assert changed.heartbeat_s == 5
    assert [t.deadband for t in changed.tags] == [Deadband(absolute=0.5), Deadband(percent=2)]
    assert with_overrides(config, heartbeat_s=None, deadbands=[]) == config
    assert parse_deadband("level=0") == ("level", Deadband(absolute=0))
