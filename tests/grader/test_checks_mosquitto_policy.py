"""sec-03: the student's Mosquitto files (loading, refusals, rewriting), the
mosquitto_attacks verdicts from built observations, and the TLS-version probe against the
real Debian mosquitto."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from pathlib import Path

import pytest

from grader.checks.mosquitto_policy import ATTACKS, tenant_attempt, tls_handshake
from grader.mosquitto_submission import (
    GraderAccount,
    SubmittedMosquitto,
    load_mosquitto_submission,
)
from grader.observation import ProbeRecord
from grader.submission import SubmissionError
from iiotlab.certs import make_tls_files
from iiotlab.mqtt.mosquitto import find_mosquitto
from tests.grader.builders import T0, good_stream, observation, run_check

SOLUTION = Path(__file__).parents[2] / "labs" / "sec-03-mosquitto-tls-acl" / "solution"


def submission(tmp_path: Path, conf: str | None = None, **files: str) -> Path:
    folder = tmp_path / "sub"
    shutil.copytree(SOLUTION, folder)
    if conf is not None:
        (folder / "mosquitto.conf").write_text(conf)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


BASE = "allow_anonymous false\npassword_file passwd\nacl_file acl\n"
TLS = "listener 8883\ncafile ca.crt\ncertfile server.crt\nkeyfile server.key\n"


def test_the_solution_loads_with_the_tenant_filled_in(tmp_path: Path) -> None:
    sub = load_mosquitto_submission(submission(tmp_path), "ana")
    assert sub.username == "gw-ana" and sub.password
    assert sub.acl is not None and "iiot/ana/#" in sub.acl and "${" not in sub.acl
    assert sub.passwords is not None and sub.passwords.startswith("gw-ana:$7$")
    assert sub.plaintext is None and sub.tls is not None
    assert sub.tls.tls_version == "tlsv1.2"


@pytest.mark.parametrize(
    ("conf", "says"),
    [
        (BASE + "plugin /usr/lib/evil.so\n" + TLS, "loads a shared library"),
        (BASE + "include_dir /etc/mosquitto/conf.d\n" + TLS, "outside the submission"),
        (BASE + "port 1883\n" + TLS, "use a `listener` line"),
        (BASE + "per_listener_settings true\n" + TLS, "per_listener_settings false"),
        (BASE + "frobnicate yes\n" + TLS, "unknown or unsupported directive `frobnicate`"),
        (BASE, "no `listener` line"),
        (BASE + TLS + TLS, "2 TLS listeners"),
        ("tls_version tlsv1.2\n" + BASE + TLS, "before any `listener`"),
        (BASE.replace("passwd", "/etc/mosquitto/passwd") + TLS, "points outside the submission"),
        (BASE + TLS + "protocol websockets\n", "protocol websockets is not graded"),
        (BASE + TLS + "tls_version tlsv9\n", "expected tls_version tlsv1.1 or tlsv1.2 or"),
        ("allow_anonymous maybe\n" + BASE + TLS, "expected allow_anonymous true or"),
        (BASE + "max_keepalive soon\n" + TLS, "`max_keepalive soon` is not valid"),
    ],
)
def test_a_bad_conf_is_a_submission_error_naming_what_to_change(
    tmp_path: Path, conf: str, says: str
) -> None:
    with pytest.raises(SubmissionError, match=re.escape(says)):
        load_mosquitto_submission(submission(tmp_path, conf), "ana")


def test_unhashed_passwords_and_missing_credentials_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match=r"not hashed.*mosquitto_passwd"):
        load_mosquitto_submission(submission(tmp_path, passwd="gw-ana:secret\n"), "ana")
    folder = submission(tmp_path / "b")
    (folder / "credentials.yaml").unlink()
    with pytest.raises(SubmissionError, match="gateway's account is missing"):
        load_mosquitto_submission(folder, "ana")


def test_the_grader_owns_ports_certificates_and_logging(tmp_path: Path) -> None:
    conf = BASE + "log_dest file /var/log/x.log\npersistence_location /var/lib/\n" + TLS
    conf += "tls_version tlsv1.3\n\nlistener 1883\n"
    sub = load_mosquitto_submission(submission(tmp_path, conf), "bo")
    assert len(sub.dropped) == 2
    tls = make_tls_files(tmp_path / "tls")
    broker = SubmittedMosquitto(sub, tls, GraderAccount("obs", "pw"))
    text = broker.config_text(tmp_path)
    assert "/var/log" not in text and "/var/lib" not in text and "8883" not in text
    assert f"certfile {tls.cert_file}" in text and "tls_version tlsv1.3" in text
    assert "listener 1883" not in text and text.count("listener ") == 2
    assert f"password_file {tmp_path / 'passwd'}" in text


def record(name: str, ok: bool) -> ProbeRecord:
    return ProbeRecord("c", name, T0 + 6000, ATTACKS[name], "refused" if ok else "ACCEPTED", ok)


def test_each_attack_is_a_part_and_counts_only_when_the_gateway_was_served() -> None:
    names = ["anonymous", "wrong_password", "tls_1_1"]
    all_refused = tuple(record(n, True) for n in names)
    assert run_check(
        "mosquitto_attacks", observation(good_stream(5), probes=all_refused), attacks=names
    ).passed
    one_open = tuple(record(n, n != "tls_1_1") for n in names)
    outcome = run_check(
        "mosquitto_attacks", observation(good_stream(5), probes=one_open), points=9, attacks=names
    )
    assert outcome.points == 6 and outcome.evidence["saw"]["tls_1_1"] == "ACCEPTED"
    unserved = run_check("mosquitto_attacks", observation([], probes=all_refused), attacks=names)
    assert unserved.points == 0 and unserved.evidence["gateway_served"] is False
    missing = run_check("mosquitto_attacks", observation(good_stream(5)), attacks=names)
    assert missing.points == 0 and missing.evidence["saw"]["anonymous"] == "not attempted"


needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")


@needs_mosquitto
@pytest.mark.parametrize(
    ("directive", "refused"), [("tlsv1.2", True), ("tlsv1.1", False), ("", False)]
)
def test_tls_1_1_is_refused_at_the_version_only_by_tls_version_tlsv1_2(
    tmp_path: Path, directive: str, refused: bool
) -> None:
    conf = BASE + TLS + (f"tls_version {directive}\n" if directive else "")
    sub = load_mosquitto_submission(submission(tmp_path, conf), "chen")
    tls = make_tls_files(tmp_path / "tls")

    async def handshakes() -> tuple[str, str]:
        async with SubmittedMosquitto(sub, tls, GraderAccount("obs", "pw")) as broker:
            assert broker.tls_port
            old = await tls_handshake(
                broker.host, broker.tls_port, ssl.TLSVersion.TLSv1_1, str(tls.ca_file)
            )
            new = await tls_handshake(broker.host, broker.tls_port, None, str(tls.ca_file))
            return old, new

    old, new = asyncio.run(handshakes())
    assert new.startswith("ok TLSv1.")
    assert old.startswith("version refused") is refused, old


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("mosquitto.conf", "mosquitto.conf is not UTF-8 text (byte 0)"),
        ("acl", "acl is not UTF-8 text (byte 0)"),
        ("credentials.yaml", "credentials.yaml is not UTF-8 text (byte 0)"),
    ],
)
def test_a_file_that_is_not_text_is_a_submission_error(
    tmp_path: Path, name: str, says: str
) -> None:
    folder = submission(tmp_path)
    (folder / name).write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SubmissionError, match=re.escape(says)):
        load_mosquitto_submission(folder, "ana")


def test_a_folder_where_a_file_belongs_is_a_submission_error(tmp_path: Path) -> None:
    for name in ("mosquitto.conf", "credentials.yaml"):
        folder = submission(tmp_path / name)
        (folder / name).unlink()
        (folder / name).mkdir()
        with pytest.raises(SubmissionError, match=re.escape(f"{name} is a folder")):
            load_mosquitto_submission(folder, "ana")


@needs_mosquitto
def test_silence_is_a_refusal_only_where_the_observer_was_seen_to_get_through(
    tmp_path: Path,
) -> None:
    sub = load_mosquitto_submission(submission(tmp_path), "chen")
    tls = make_tls_files(tmp_path / "tls")
    gateway = GraderAccount(sub.username, sub.password)

    async def attempts() -> tuple[dict[str, str], dict[str, str]]:
        async with SubmittedMosquitto(sub, tls, GraderAccount("obs", "pw")) as broker:
            judged = await tenant_attempt(broker, gateway, "someone-else")
            # a witness the ACL keeps out of the victim's topics proves nothing by silence
            broker.observer = gateway
            return judged, await tenant_attempt(broker, broker.intruder, "someone-else")

    judged, unjudged = asyncio.run(attempts())
    assert judged == {"read": "refused", "write": "refused"}
    assert all(
        v.startswith("not judged: the grader's observer got nothing") for v in unjudged.values()
    )
