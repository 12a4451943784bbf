"""The private folders one grading run gives the submission, outside the out folder.

The submission works in a copy of its folder, keeps its state in `state/`, and has a
private HOME and TMPDIR. The datasheet and the broker's CA certificate are copied in, so
nothing the submission is handed points into the grader's out folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path
    cwd: Path  # the copy of the submission (or an empty folder)
    state: Path
    home: Path
    tmp: Path
    datasheet: Path
    ca_file: Path | None
    line: Path | None = None  # multi-plant labs: the folder of the line manifest, read-only
    output: Path | None = None  # IIOTLAB_OUTPUT_DIR: files the grader collects after the run

    @classmethod
    def create(cls, submission: Path | None, datasheet: Path, ca_file: Path | None) -> Workspace:
        root = Path(tempfile.mkdtemp(prefix="iiotlab-run-")).resolve()
        try:
            cwd = root / "submission"
            if submission is not None:
                shutil.copytree(submission, cwd, symlinks=True)
            else:
                cwd.mkdir()
            for name in ("state", "home", "tmp", "output"):
                (root / name).mkdir()
            shutil.copyfile(datasheet, root / "datasheet.json")
            ca_copy = None
            if ca_file is not None:
                ca_copy = root / "ca.pem"
                shutil.copyfile(ca_file, ca_copy)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(
            root,
            cwd,
            root / "state",
            root / "home",
            root / "tmp",
            root / "datasheet.json",
            ca_copy,
            output=root / "output",
        )

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def disk_bytes(self, max_entries: int = 50_000) -> int:
        """Bytes written under state/, home/, tmp/ and output/ (the walk stops at
        `max_entries`)."""
        total, seen = 0, 0
        tops = (self.state, self.home, self.tmp, *((self.output,) if self.output else ()))
        for top in tops:
            for root, dirs, names in os.walk(top):
                for name in (*names, *dirs):
                    seen += 1
                    if seen > max_entries:
                        return total
                    try:
                        total += (Path(root) / name).lstat().st_blocks * 512
                    except OSError:
                        continue
        return total
