"""The exam's audit log: append-only JSON lines, each holding the hash of the one before.

Every entry is `{"seq", "ts", "kind", "actor", "data", "prev", "hash"}`; `hash` is the
SHA-256 of the canonical JSON of the entry without it, and `prev` is the previous entry's
hash (64 zeros for the first). Editing, deleting or reordering a line breaks the chain.
A chain can be recomputed by whoever edits it, and a truncated one still chains, so the
exam closes the log with an `exam_closed` entry that carries an Ed25519 signature over the
head of the chain and the number of entries: `verify_log` checks both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grader.results import canonical_json
from grader.signing import SigningKey, verify
from iiotlab.errors import SignatureError

GENESIS = "0" * 64
CLOSING_KIND = "exam_closed"


def entry_hash(entry: dict[str, Any]) -> str:
    unsigned = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(unsigned)).hexdigest()


def _line_text(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, sort_keys=True)


class AuditLog:
    """Appends entries to one file; the exam server is its only writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head = GENESIS
        self.count = 0
        self._file: IO[str] | None = None
        self.closed = False

    def open(self) -> None:
        if self.path.exists() and self.path.stat().st_size > 0:
            raise FileExistsError(f"{self.path} exists: an exam's out folder is used once")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, kind: str, actor: str, **data: Any) -> dict[str, Any]:
        if self._file is None or self.closed:
            raise RuntimeError("the audit log is not open")
        entry: dict[str, Any] = {
            "seq": self.count,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "actor": actor,
            "data": data,
            "prev": self.head,
        }
        entry["hash"] = entry_hash(entry)
        self._file.write(_line_text(entry) + "\n")
        self._file.flush()
        self.head, self.count = entry["hash"], self.count + 1
        return entry

    def close(self, key: SigningKey, exam_id: str) -> dict[str, Any]:
        """The signed closing entry; nothing can be appended after it."""
        seal = {"exam": exam_id, "head": self.head, "entries": self.count}
        entry = self.append(CLOSING_KIND, "server", **seal, signature=key.sign(seal))
        self.closed = True
        self.stop()
        return entry

    def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class LogReport:
    entries: int
    head: str
    closed: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_line(number: int, text: str, seq: int, prev: str) -> tuple[dict[str, Any] | None, str]:
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"line {number}: not JSON ({exc.msg})"
    if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
        return None, f"line {number}: not an audit entry (no hash)"
    if entry.get("seq") != seq:
        return entry, f"line {number}: seq {entry.get('seq')!r}, expected {seq} (deleted or moved)"
    if entry.get("prev") != prev:
        return entry, f"line {number}: prev does not name the line before (deleted or moved)"
    if entry_hash(entry) != entry["hash"]:
        return entry, f"line {number}: its hash does not match its content (edited)"
    if _line_text(entry) != text:
        return entry, f"line {number}: not byte for byte as the server wrote it (edited)"
    return entry, ""


def _check_seal(entry: dict[str, Any], head: str, count: int, key: Ed25519PublicKey) -> str:
    data = entry.get("data") or {}
    if data.get("head") != head or data.get("entries") != count:
        return "the closing entry does not seal the lines before it"
    try:
        verify(data, key)
    except SignatureError as exc:
        return f"the closing entry's signature: {exc}"
    return ""


def verify_log(
    path: Path, key: Ed25519PublicKey | None, *, require_closed: bool = True
) -> LogReport:
    """Check the chain line by line and the signed closing entry (when `key` is given)."""
    problems: list[str] = []
    head, count, closed = GENESIS, 0, False
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, text in enumerate(lines, start=1):
        if closed:
            problems.append(f"line {number}: an entry after the exam was closed")
            break
        entry, problem = _check_line(number, text, count, head)
        if problem:
            problems.append(problem)
            break
        assert entry is not None
        if entry.get("kind") == CLOSING_KIND:
            closed = True
            if key is not None and (seal := _check_seal(entry, head, count, key)):
                problems.append(f"line {number}: {seal}")
        head, count = entry["hash"], count + 1
    if not problems and require_closed and not closed:
        problems.append(
            f"no {CLOSING_KIND} entry at the end: the log was cut short or the exam is still open"
        )
    return LogReport(count, head, closed, tuple(problems))
