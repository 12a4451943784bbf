"""A folder as gzipped tar bytes (a job's submission and lab, a worker's out folder).

Workers share no filesystem with the coordinator: folders travel inside the jobs and
their results. Packing stops at a cap with ArchiveTooLargeError; unpacking refuses
absolute paths, `..`, links that leave the folder and device files (tarfile's `data`
filter), so a hostile archive writes nothing outside its target.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Collection
from pathlib import Path

from iiotlab.errors import IiotlabError

SKIPPED_NAMES = frozenset({"__pycache__", ".git"})


class ArchiveError(IiotlabError):
    """A job archive cannot be made or unpacked."""


class ArchiveTooLargeError(ArchiveError):
    """A folder packs to more bytes than a job may carry."""

    def __init__(self, folder: Path, cap: int) -> None:
        self.folder, self.cap = folder, cap
        super().__init__(
            f"{folder} packs to more than {cap / 2**20:g} MiB (compressed), the most a grading "
            "job carries: leave out virtual environments, build outputs, data sets and logs"
        )


class _CappedBuffer(io.BytesIO):
    def __init__(self, folder: Path, cap: int) -> None:
        super().__init__()
        self._folder, self._cap = folder, cap

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self._cap:
            raise ArchiveTooLargeError(self._folder, self._cap)
        return super().write(data)


def pack_folder(folder: Path, cap: int, skip: Collection[str] = ()) -> bytes:
    """The folder's files as .tar.gz bytes; top-level names in `skip` are left out.

    What unpacking would refuse (a link out of the folder, a device file) is refused here,
    with its name, so the sender hears about it rather than the receiver.
    """

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(part in SKIPPED_NAMES for part in parts) or (parts and parts[0] in skip):
            return None
        try:
            tarfile.data_filter(info, str(folder))
        except tarfile.FilterError as exc:
            raise ArchiveError(f"{folder / Path(*parts)}: {exc}") from None
        return info

    buffer = _CappedBuffer(folder, cap)
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        archive.add(folder, arcname=".", filter=keep)
    return buffer.getvalue()


def unpack_folder(data: bytes, target: Path, *, max_bytes: int, max_files: int) -> None:
    """Unpack .tar.gz bytes into `target` (created), refusing anything that leaves it.

    The members are counted first, so a small archive that expands past `max_bytes` or
    `max_files` (a gzip bomb) writes nothing.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
            total = sum(member.size for member in members if member.isfile())
            if total > max_bytes or len(members) > max_files:
                raise ArchiveError(
                    f"a job archive expands to {total} bytes in {len(members)} entries, over "
                    f"the {max_bytes} bytes in {max_files} entries a job may unpack"
                )
            archive.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"cannot unpack a job archive into {target}: {exc}") from None
