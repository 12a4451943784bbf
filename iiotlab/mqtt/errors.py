"""MQTT errors; all of them are IiotlabError so callers can catch one base."""

from __future__ import annotations

from iiotlab.errors import IiotlabError


class MqttError(IiotlabError):
    """Base of the MQTT errors."""


class MqttConnectError(MqttError):
    """The client could not connect, or lost its connection; the message says why."""


class MqttNotConnectedError(MqttConnectError):
    """An operation needs a connection and the client has none right now (buffer and retry)."""


class MqttSubscribeError(MqttError):
    """The broker refused a subscription (SUBACK failure), usually an ACL denial."""


class BrokerStartError(MqttError):
    """A broker could not start: port in use, bad TLS files, missing binary."""
