"""MQTT for iiotlab: two brokers (amqtt in-process, Mosquitto subprocess) and one client."""

from __future__ import annotations

from typing import Literal

from iiotlab.certs import TlsFiles
from iiotlab.mqtt.broker import Broker, BrokerConfig, BrokerUser
from iiotlab.mqtt.client import MqttClient, MqttMessage
from iiotlab.mqtt.embedded import EmbeddedBroker
from iiotlab.mqtt.errors import (
    BrokerStartError,
    MqttConnectError,
    MqttError,
    MqttNotConnectedError,
    MqttSubscribeError,
)
from iiotlab.mqtt.mosquitto import MosquittoBroker
from iiotlab.mqtt.url import MqttEndpoint, parse_mqtt_url

BrokerKind = Literal["embedded", "mosquitto"]


def make_broker(kind: BrokerKind, config: BrokerConfig | None = None) -> Broker:
    """A not-yet-started broker of ``kind`` ("embedded" = amqtt, "mosquitto")."""
    if kind == "embedded":
        return EmbeddedBroker(config)
    if kind == "mosquitto":
        return MosquittoBroker(config)
    raise ValueError(f"unknown broker kind {kind!r}; expected 'embedded' or 'mosquitto'")


__all__ = [
    "Broker",
    "BrokerConfig",
    "BrokerKind",
    "BrokerStartError",
    "BrokerUser",
    "EmbeddedBroker",
    "MosquittoBroker",
    "MqttClient",
    "MqttConnectError",
    "MqttEndpoint",
    "MqttError",
    "MqttMessage",
    "MqttNotConnectedError",
    "MqttSubscribeError",
    "TlsFiles",
    "make_broker",
    "parse_mqtt_url",
]
