"""Pure parts of the MQTT package: URLs, ACL matching, configs, generated files."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiotlab.certs import TlsFiles
from iiotlab.errors import ConfigError
from iiotlab.mqtt import BrokerConfig, BrokerUser, make_broker, parse_mqtt_url
from iiotlab.mqtt.broker import topic_filter_within
from iiotlab.mqtt.mosquitto import MosquittoBroker, acl_text, mosquitto_password_line

pytestmark = pytest.mark.unit


def test_url_with_credentials_and_defaults() -> None:
    endpoint = parse_mqtt_url("mqtt://al%40ice:p%3Aw%2F@127.0.0.1")
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("127.0.0.1", 1883, False)
    assert (endpoint.username, endpoint.password) == ("al@ice", "p:w/")
    assert endpoint.display() == "mqtt://al@ice@127.0.0.1:1883"
    tls = parse_mqtt_url("mqtts://broker.example:9999")
    assert (tls.port, tls.tls, tls.username) == (9999, True, None)
    assert parse_mqtt_url("mqtts://h").port == 8883


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h:1", "scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:notaport", "invalid"),
        ("mqtt://h:1/path", "path"),
    ],
)
def test_bad_urls_name_the_key_and_hide_the_password(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_mqtt_url(url.replace("//", "//u:topsecret@"))
    assert "key 'url'" in str(caught.value)
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize(
    ("requested", "allowed", "expected"),
    [
        ("iiot/a/tank-1/telemetry", "iiot/a/#", True),
        ("iiot/a/#", "iiot/a/#", True),
        ("iiot/a/+/status", "iiot/a/#", True),
        ("iiot/a", "iiot/a/#", True),  # MQTT: "a/#" also matches "a"
        ("iiot/b/tank-1/telemetry", "iiot/a/#", False),
        ("iiot/+/tank-1/telemetry", "iiot/a/#", False),
        ("iiot/#", "iiot/a/#", False),
        ("#", "iiot/a/#", False),
        ("anything/at/all", "#", True),
        ("iiot/a/x", "iiot/+/x", True),
        ("iiot/a/x/y", "iiot/+/x", False),
    ],
)
def test_topic_filter_within(requested: str, allowed: str, expected: bool) -> None:
    assert topic_filter_within(requested, allowed) is expected


@given(st.lists(st.sampled_from(["a", "b", "+", "x1"]), min_size=1, max_size=5))
def test_every_filter_is_within_itself_and_within_hash(levels: list[str]) -> None:
    topic_filter = "/".join(levels)
    assert topic_filter_within(topic_filter, topic_filter)
    assert topic_filter_within(topic_filter, "#")


def test_user_and_config_validation() -> None:
    assert BrokerUser("a", "p", "t1").topic_filter == "iiot/t1/#"
    assert BrokerUser("root", "p", None).topic_filter == "#"
    with pytest.raises(ConfigError, match=r"users\.tenant"):
        BrokerUser("a", "p", "t/1")
    with pytest.raises(ConfigError, match=r"users\.username"):
        BrokerUser("a:b", "p", "t")
    with pytest.raises(ConfigError, match="duplicate"):
        BrokerConfig(users=(BrokerUser("a", "p", "t"), BrokerUser("a", "q", "u")))
    with pytest.raises(ConfigError, match="needs TLS"):
        BrokerConfig(plaintext=False)
    assert BrokerConfig().anonymous_allowed
    assert not BrokerConfig(users=(BrokerUser("a", "p", "t"),)).anonymous_allowed
    assert BrokerConfig(users=(BrokerUser("a", "p", "t"),), allow_anonymous=True).anonymous_allowed


def test_make_broker_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="'embedded' or 'mosquitto'"):
        make_broker("emqx", BrokerConfig())  # type: ignore[arg-type]


def test_password_line_is_mosquitto_pbkdf2_sha512() -> None:
    line = mosquitto_password_line("alice", "pw")
    username, _, hashed = line.partition(":")
    _, kind, iterations, salt, digest = hashed.split("$")
    assert (username, kind, iterations) == ("alice", "7", "101")
    expected = hashlib.pbkdf2_hmac("sha512", b"pw", base64.b64decode(salt), 101)
    assert base64.b64decode(digest) == expected


def test_generated_mosquitto_config(tmp_path: Path) -> None:
    users = (BrokerUser("alice", "pw", "a"), BrokerUser("admin", "pw", None))
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "s.crt", tmp_path / "s.key")
    broker = MosquittoBroker(BrokerConfig(port=1883, users=users, tls=tls, tls_port=8883))
    text = broker.config_text(tmp_path)
    for line in (
        "allow_anonymous false",
        "max_queued_messages 100000",
        "max_queued_bytes 0",
        "max_inflight_messages 1000",
        "max_inflight_bytes 0",
        "message_size_limit 262144",
        "persistence false",
        f"password_file {tmp_path / 'passwd'}",
        f"acl_file {tmp_path / 'acl'}",
        "listener 1883 127.0.0.1",
        "listener 8883 127.0.0.1",
        f"cafile {tmp_path / 'ca.crt'}",
    ):
        assert line in text.splitlines()
    unlimited = MosquittoBroker(BrokerConfig(max_message_bytes=None)).config_text(tmp_path)
    assert "message_size_limit 0" in unlimited.splitlines()
    assert acl_text(users).strip().split("\n\n")[1:3] == [
        "user alice\ntopic readwrite iiot/a/#",
        "user admin\ntopic readwrite #",
    ]


def test_stopping_a_client_whose_network_thread_never_started_does_not_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a process limit loop_start can fail after paho stored its thread object."""
    import threading

    import paho.mqtt.client as paho

    from iiotlab.mqtt.client import _stop_blocking

    client = paho.Client(paho.CallbackAPIVersion.VERSION2)

    def no_thread_left(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread_left)
    with pytest.raises(RuntimeError):
        client.loop_start()
    monkeypatch.undo()
    _stop_blocking(client)  # used to raise "cannot join thread before it is started"
