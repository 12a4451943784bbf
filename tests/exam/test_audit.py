"""The hash-chained audit log and `iiotlab exam verify-log`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from grader.exam.audit import AuditLog, verify_log
from grader.signing import SigningKey, write_new_key
from iiotlab.cli import build_app


@pytest.fixture
def key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def closed_log(path: Path, key: SigningKey) -> Path:
    log = AuditLog(path)
    log.open()
    log.append("exam_started", "server", candidates=2)
    log.append("login", "s1", ip="127.0.0.1")
    log.append("attempt", "s1", task="edge-01", attempt="a1")
    log.append("result", "server", attempt="a1", score=70)
    log.append("extra_time", "proctor", student="s2", percent=25)
    log.close(key, "exam-1")
    return path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_an_untouched_log_verifies(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    report = verify_log(path, key.private.public_key())
    assert report.ok and report.entries == 6 and report.closed


def test_editing_a_line_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    rows = lines(path)
    rows[3] = rows[3].replace('"score": 70', '"score": 100')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = verify_log(path, key.private.public_key())
    assert not report.ok and "line 4" in report.problems[0] and "edited" in report.problems[0]


def test_editing_and_rehashing_the_chain_fails_on_the_signature(
    tmp_path: Path, key: SigningKey
) -> None:
    from grader.exam.audit import GENESIS, entry_hash

    path = closed_log(tmp_path / "audit.jsonl", key)
    entries = [json.loads(row) for row in lines(path)]
    entries[3]["data"]["score"] = 100
    prev = GENESIS
    for entry in entries:  # a forger recomputes every hash, the seal's head too
        entry["prev"] = prev
        if entry["kind"] == "exam_closed":
            entry["data"]["head"] = prev
        entry["hash"] = prev = entry_hash(entry)
    path.write_text(
        "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries),
        encoding="utf-8",
    )
    assert verify_log(path, None).ok  # the chain alone cannot tell
    report = verify_log(path, key.private.public_key())
    assert not report.ok and "signature" in report.problems[0]


def test_deleting_a_line_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    rows = lines(path)
    del rows[2]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = verify_log(path, key.private.public_key())
    assert not report.ok and "line 3" in report.problems[0]


def test_cutting_the_end_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    path.write_text("\n".join(lines(path)[:4]) + "\n", encoding="utf-8")
    report = verify_log(path, key.private.public_key())
    assert not report.ok and "cut short" in report.problems[0]


def test_reordering_lines_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    rows = lines(path)
    rows[1], rows[2] = rows[2], rows[1]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = verify_log(path, key.private.public_key())
    assert not report.ok and "line 2" in report.problems[0]


def test_a_line_appended_after_closing_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    last = json.loads(lines(path)[-1])
    extra = {"seq": 6, "ts": last["ts"], "kind": "login", "actor": "s9", "data": {}}
    extra["prev"] = last["hash"]
    from grader.exam.audit import entry_hash

    extra["hash"] = entry_hash(extra)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(extra) + "\n")
    assert not verify_log(path, key.private.public_key()).ok


def test_verify_log_command(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    key = write_new_key(pem)
    path = closed_log(tmp_path / "audit.jsonl", key)
    runner = CliRunner()
    app = build_app()
    ok = runner.invoke(app, ["exam", "verify-log", str(path), "--public-key", str(pem)])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output
    rows = lines(path)
    rows[1] = rows[1].replace('"s1"', '"s2"')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    bad = runner.invoke(app, ["exam", "verify-log", str(path), "--public-key", str(pem)])
    assert bad.exit_code == 1
    assert "INVALID" in bad.output and "line 2" in bad.output


def test_a_whitespace_edit_fails(tmp_path: Path, key: SigningKey) -> None:
    path = closed_log(tmp_path / "audit.jsonl", key)
    rows = lines(path)
    rows[1] = rows[1] + " "
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert not verify_log(path, key.private.public_key()).ok


def test_an_open_log_verifies_only_with_open(tmp_path: Path, key: SigningKey) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.open()
    log.append("exam_started", "server")
    log.append("login", "s1")
    log.stop()
    public = key.private.public_key()
    assert verify_log(log.path, public, require_closed=False).ok
    assert not verify_log(log.path, public).ok
    with pytest.raises(FileExistsError):
        AuditLog(log.path).open()  # an exam's log is never appended to by a second server
