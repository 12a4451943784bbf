"""The gateway-under-test variables: one model, written by the grader, read by gateways."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_gateway.config_builders import ENV_VARIABLES, config_from_env
from iiotlab.errors import ConfigError
from iiotlab.gateway_env import GatewayEnvironment

pytestmark = pytest.mark.unit


def test_round_trip_and_names() -> None:
    variables = GatewayEnvironment(
        datasheet=Path("/w/datasheet.json"),
        mqtt_url="mqtt://u:p@127.0.0.1:1",
        tenant="alice",
        modbus_port=5020,
        proxy_port=6000,
    )
    environ = variables.to_environ()
    assert environ["IIOTLAB_MODBUS_PORT"] == "5020" and "IIOTLAB_OPCUA_URL" not in environ
    assert GatewayEnvironment.from_environ({**environ, "PATH": "/bin"}) == variables
    assert set(environ) <= set(ENV_VARIABLES)
    for name in ("IIOTLAB_PROXY_PORT", "IIOTLAB_PLATFORM_URL", "IIOTLAB_PLATFORM_TOKEN"):
        assert name in ENV_VARIABLES  # what the grader sets, a gateway can read


def test_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"IIOTLAB_DATASHEET is not set"):
        config_from_env({})
    with pytest.raises(ConfigError, match=r"IIOTLAB_MODBUS_PORT.*'99999'"):
        GatewayEnvironment.from_environ(
            {"IIOTLAB_DATASHEET": "d.json", "IIOTLAB_MODBUS_PORT": "99999"}
        )
