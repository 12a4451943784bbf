"""Where labs are: the built-in ones shipped in the distribution, and an instructor's own.

The built-in labs are the repository's `labs/` folder, installed as the package
`iiotlab_labs` (setup.py), so importlib.resources finds them in a wheel, an editable
install and the Docker image alike. A lab argument on the command line is a lab folder,
its lab.yaml, or a lab id looked up in `--labs DIR` first and then among the built-in labs.
"""

from __future__ import annotations

import importlib.resources
import shutil
from dataclasses import dataclass
from pathlib import Path

from iiotlab.errors import ConfigError

BUILTIN_PACKAGE = "iiotlab_labs"
SPEC_FILE = "lab.yaml"
STARTER_DIR = "starter"


@dataclass(frozen=True)
class LabEntry:
    """A lab folder found in a labs folder."""

    id: str
    path: Path
    builtin: bool


def builtin_labs_dir() -> Path | None:
    """The installed built-in labs folder, or None when the package is not installed."""
    try:
        root = importlib.resources.files(BUILTIN_PACKAGE)
    except ModuleNotFoundError:
        return None
    # pip installs wheels unpacked, so the package is a folder on disk
    return root if isinstance(root, Path) and root.is_dir() else None


def _labs_in(folder: Path, *, builtin: bool) -> list[LabEntry]:
    return [
        LabEntry(spec.parent.name, spec.parent, builtin)
        for spec in sorted(folder.glob(f"*/{SPEC_FILE}"))
    ]


def _check_labs_dir(labs_dir: Path) -> None:
    if not labs_dir.is_dir():
        raise ConfigError(
            "labs folder not found",
            file=labs_dir,
            key="--labs",
            expected="a folder holding <id>/lab.yaml lab folders",
        )


def list_labs(labs_dir: Path | None = None) -> list[LabEntry]:
    """The labs of `labs_dir` (when given), then every built-in lab it does not shadow."""
    entries: list[LabEntry] = []
    if labs_dir is not None:
        _check_labs_dir(labs_dir)
        entries.extend(_labs_in(labs_dir, builtin=False))
    builtin = builtin_labs_dir()
    if builtin is not None:
        own = {entry.id for entry in entries}
        entries.extend(e for e in _labs_in(builtin, builtin=True) if e.id not in own)
    return entries


def _known_ids(labs_dir: Path | None) -> str:
    ids = [entry.id for entry in list_labs(labs_dir)]
    return ", ".join(ids) if ids else "(none: no built-in labs are installed)"


def resolve_lab(arg: str | Path, labs_dir: Path | None = None) -> Path:
    """The lab folder or lab.yaml that a lab argument names.

    A path holding a lab.yaml (or a .yaml file) wins; otherwise the argument is a lab id,
    looked up in `labs_dir` first, then among the built-in labs. Anything else is a
    ConfigError that lists the known ids.
    """
    path = Path(arg)
    if path.is_file() or (path / SPEC_FILE).is_file():
        return path
    for entry in list_labs(labs_dir):
        if entry.id == str(arg):
            return entry.path
    expected = f"a lab folder, its lab.yaml, or a lab id: {_known_ids(labs_dir)}"
    if path.is_dir():
        raise ConfigError(f"no {SPEC_FILE} in this folder", file=path, expected=expected)
    raise ConfigError("unknown lab", key="lab", value=str(arg), expected=expected)


def lab_folder(lab: Path) -> Path:
    """The folder of a resolved lab (resolve_lab may return its lab.yaml)."""
    return lab.parent if lab.is_file() else lab


def readme_path(lab: Path, language: str) -> Path:
    """The lab's README in `language`; a ConfigError when the lab has none."""
    folder = lab_folder(lab)
    readme = folder / f"README.{language}.md"
    if not readme.is_file():
        present = sorted(p.name for p in folder.glob("README.*.md"))
        raise ConfigError(
            "the lab has no README in this language",
            file=readme,
            key="--lang",
            value=language,
            expected=f"one of {', '.join(present) or '(no README at all)'}",
        )
    return readme


def copy_lab(lab: Path, target: Path) -> list[Path]:
    """Copy the lab's READMEs and its starter's files into `target` (new or empty).

    The starter's files land at the top of `target`, so the folder is a submission as it
    is. Never the solution, the mutants or lab.yaml. Returns the paths written.
    """
    folder = lab_folder(lab)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            "the target folder is not empty; nothing copied",
            file=target,
            expected="a new or empty folder",
        )
    starter = folder / STARTER_DIR
    if not starter.is_dir():
        raise ConfigError("the lab has no starter folder", file=starter, expected="<lab>/starter/")
    target.mkdir(parents=True, exist_ok=True)
    for readme in sorted(folder.glob("README.*.md")):
        shutil.copy2(readme, target / readme.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(starter, target, ignore=ignore, dirs_exist_ok=True)
    return sorted(p for p in target.rglob("*") if p.is_file())
