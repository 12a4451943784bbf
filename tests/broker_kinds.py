"""The broker kinds every MQTT-facing test runs on: embedded amqtt and Debian Mosquitto.

Mosquitto cases carry the `mosquitto` marker and are skipped only when the binary is
missing (CI installs it). The `broker_kind` fixture in tests/conftest.py uses this list.
"""

from __future__ import annotations

import pytest

from iiotlab.mqtt.mosquitto import find_mosquitto

BROKER_KINDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param(
        "mosquitto",
        id="mosquitto",
        marks=[
            pytest.mark.mosquitto,
            pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
        ],
    ),
]
