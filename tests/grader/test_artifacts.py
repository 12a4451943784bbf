"""grader/artifacts.py: what a submission left in IIOTLAB_OUTPUT_DIR, read defensively."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader import artifacts
from grader.artifacts import collect, find

pytestmark = pytest.mark.unit


def test_regular_files_are_kept_and_copied_out(tmp_path: Path) -> None:
    output, out = tmp_path / "output", tmp_path / "out" / "output"
    (output / "sub").mkdir(parents=True)
    (output / "shifts.csv").write_text("shift_start_ms,readings\n1,2\n")
    (output / "sub" / "series.csv").write_bytes(b"\xff\x00")
    files = collect(output, out)
    assert [f.name for f in files] == ["shifts.csv", "sub/series.csv"]
    assert find(files, "shifts.csv").data == b"shift_start_ms,readings\n1,2\n"  # type: ignore[union-attr]
    assert (out / "sub" / "series.csv").read_bytes() == b"\xff\x00"


def test_links_large_files_and_missing_folders_are_reported_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "MAX_FILE_BYTES", 10)
    output = tmp_path / "output"
    output.mkdir()
    secret = tmp_path / "secret.pem"
    secret.write_text("KEY")
    os.symlink(secret, output / "a.csv")
    os.symlink(tmp_path, output / "folder")
    (output / "big.csv").write_text("x" * 11)
    files = {f.name: f for f in collect(output, tmp_path / "copy")}
    assert files["a.csv"].data is None and "link" in str(files["a.csv"].problem)
    assert files["folder"].data is None
    assert files["big.csv"].data is None and files["big.csv"].size == 11
    assert "limit" in str(files["big.csv"].problem)
    assert not (tmp_path / "copy").exists()
    assert collect(tmp_path / "nowhere") == ()


def test_at_most_max_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_FILES", 3)
    for index in range(5):
        (tmp_path / f"f{index}.csv").write_text("x")
    assert [f.name for f in collect(tmp_path)] == ["f0.csv", "f1.csv", "f2.csv"]


def test_the_files_the_checks_read_are_collected_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "MAX_FILES", 3)
    for index in range(5):
        (tmp_path / f"f{index}.csv").write_text("x")
    (tmp_path / "shifts.csv").write_text("shift,kwh\n")  # after f*.csv in name order
    names = [f.name for f in collect(tmp_path, wanted={"shifts.csv"})]
    assert names == ["shifts.csv", "f0.csv", "f1.csv"]
