"""Files a submission produces: written to IIOTLAB_OUTPUT_DIR, collected after the run.

A data lab's submission (plat-05: a cleaned export, per-shift KPIs) writes its results as
files. The grader gives it an empty folder in its workspace, and once every process of the
run is gone it reads what is there: regular files only (a link is reported, never
followed), at most MAX_FILES (the files the lab's checks name first, then the others in
name order), each kept whole up to MAX_FILE_BYTES (a larger one is reported with its
size). What was kept is also copied to the out folder's `output/`.
Checks read the files from the Observation; a missing or garbled file is the student's
mistake with a message, never a crash.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

OUTPUT_VARIABLE = "IIOTLAB_OUTPUT_DIR"
MAX_FILE_BYTES = 8 * 2**20
MAX_FILES = 20


@dataclass(frozen=True)
class SubmittedFile:
    name: str  # path inside the output folder, '/'-separated
    size: int
    data: bytes | None  # None: not kept (see problem)
    problem: str | None = None


def _read(path: Path, size: int) -> SubmittedFile | bytes:
    name = path.name
    if size > MAX_FILE_BYTES:
        return SubmittedFile(name, size, None, f"{size} bytes, over the {MAX_FILE_BYTES} limit")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return SubmittedFile(name, size, None, f"unreadable: {error.strerror or error}")
    if len(data) > MAX_FILE_BYTES:  # grew after the run: keep nothing
        return SubmittedFile(name, len(data), None, f"over the {MAX_FILE_BYTES} byte limit")
    return data


def _entries(folder: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(folder):  # does not descend into linked folders
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if (Path(root) / d).is_symlink()]:
            path = Path(root) / name
            found.append((path.relative_to(folder).as_posix(), path))
    return found


def collect(
    folder: Path, copy_to: Path | None = None, wanted: Collection[str] = ()
) -> tuple[SubmittedFile, ...]:
    """The files under `folder` (see module doc); kept ones are copied under `copy_to`.

    `wanted`: the names the lab's checks read; they are collected whatever else is there.
    """
    if not folder.is_dir():
        return ()
    files: list[SubmittedFile] = []
    entries = sorted(_entries(folder), key=lambda entry: entry[0] not in wanted)
    for relative, path in entries[:MAX_FILES]:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            kind = "a link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            files.append(SubmittedFile(relative, info.st_size, None, f"{kind}: not read"))
            continue
        read = _read(path, info.st_size)
        if isinstance(read, SubmittedFile):
            files.append(SubmittedFile(relative, read.size, None, read.problem))
            continue
        files.append(SubmittedFile(relative, len(read), read))
        if copy_to is not None and copy_to.resolve() != folder.resolve():
            target = copy_to / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read)
    return tuple(files)


def find(files: tuple[SubmittedFile, ...], name: str) -> SubmittedFile | None:
    return next((f for f in files if f.name == name), None)
