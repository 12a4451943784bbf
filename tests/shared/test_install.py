"""A real install: the wheel, in a fresh virtual environment, without extras.

`pip install iiotlab` must give a command whose every part runs (each runtime import is a
declared dependency) and whose labs are found from any folder. The wheel is built from
this working tree and installed as a user would, pip resolving [project].dependencies from
the package index; then the README's headless commands run in a folder outside the
repository, with the repository on neither sys.path nor PYTHONPATH.
"""

from __future__ import annotations

import csv
import email
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("iiotlab", "simulators", "edge_gateway", "iiot_platform", "grader")
LAB = "net-01-modbus-datasheet"  # the shortest lab: 6 s
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    labs: Path  # the installed built-in labs
    env: dict[str, str]  # for commands: the fresh venv first, no repository on any path


def _run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure its output is the assertion message."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


# Left out of the copy the wheel is built from: a stale build/lib would put files that
# no longer exist into the wheel, and the rest is not source.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.pyc", ".*_cache", ".hypothesis"
)


def _build_wheel(into: Path) -> Path:
    source = into / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    wheels = into / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        cwd=into,
    )
    (wheel,) = wheels.glob("iiotlab-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("install")
    # The venv lives outside /tmp: the bubblewrap sandbox gives a submission a private
    # /tmp, and a gateway started from the venv's `iiotlab` must see the venv.
    venv = ROOT / "build" / f"install-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    wheel = _build_wheel(work)
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    pip_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        cwd=work,
        env=pip_env,
        timeout=480,
    )
    print(f"wheel built and installed in {time.monotonic() - started:.1f} s")
    home = work / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "IIOTLAB_COURSE_SECRET": "install-test-secret",
    }
    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import grader.catalog as c; print(c.builtin_labs_dir())",
        ],
        cwd=home,
        env=env,
    )
    try:
        yield Installed(venv, wheel, Path(where.stdout.strip()), env)
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def _outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    assert not folder.resolve().is_relative_to(ROOT)
    return folder


def test_the_wheel_holds_every_file_of_every_lab(installed: Installed) -> None:
    for source in sorted((ROOT / "labs").rglob("*")):
        relative = source.relative_to(ROOT / "labs")
        if not source.is_file() or "__pycache__" in relative.parts:
            continue
        shipped = installed.labs / relative
        assert shipped.is_file(), f"labs/{relative} is not in the wheel"
        assert shipped.read_bytes() == source.read_bytes()
        assert os.access(shipped, os.X_OK) == os.access(source, os.X_OK), relative
    assert installed.labs.is_relative_to(installed.venv)


def test_every_module_imports_with_only_the_declared_dependencies(
    installed: Installed, tmp_path: Path
) -> None:
    """A runtime import missing from [project].dependencies fails here."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(metadata_name))
    declared = [r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert any(r.startswith("httpx") for r in declared), declared
    script = (
        "import importlib, pkgutil, sys\n"
        f"for top in {PACKAGES!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    assert package.__file__.startswith(sys.prefix), package.__file__\n"
        "    for module in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(module.name)\n"
    )
    python = str(installed.venv / "bin" / "python")
    _run([python, "-c", script], cwd=_outside(tmp_path), env=installed.env)


def test_readme_commands_from_outside_the_repository(installed: Installed, tmp_path: Path) -> None:
    here = _outside(tmp_path)
    env = installed.env
    started = time.monotonic()

    listed = _run(["iiotlab", "lab", "list"], cwd=here, env=env)
    expected = sorted(p.parent.name for p in (ROOT / "labs").glob("*/lab.yaml"))
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["lab", "track"]
    assert [line.split()[0] for line in rows] == expected

    shown = _run(["iiotlab", "lab", "show", LAB, "--lang", "zh"], cwd=here, env=env)
    assert (
        shown.stdout.strip()
        == (ROOT / "labs" / LAB / "README.zh.md").read_text(encoding="utf-8").strip()
    )
    _run(["iiotlab", "lab", "copy", LAB, "work"], cwd=here, env=env)
    assert (here / "work" / "gateway.cmd").is_file() and (here / "work" / "README.en.md").is_file()
    refused = subprocess.run(
        ["iiotlab", "lab", "copy", LAB, "work"],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "not empty" in refused.stderr

    sheet = _run(
        [
            "iiotlab",
            "datasheet",
            "--plant",
            "tank",
            "--lab",
            LAB,
            "--student",
            "alice",
            "--format",
            "md",
        ],
        cwd=here,
        env=env,
    )
    assert "register" in sheet.stdout.lower()

    # the built-in solution, copied out of the installed package, scores full marks
    shutil.copytree(installed.labs / LAB / "solution", here / "solution")
    graded = _run(
        ["iiotlab", "grade", LAB, "--student", "alice", "--submission", "solution", "--out", "out"],
        cwd=here,
        env=env,
    )
    result = json.loads((here / "out" / "result.json").read_text(encoding="utf-8"))
    assert result["gradable"] and result["score"] == result["max_score"], graded.stdout
    _run(["iiotlab", "verify", "out/result.json"], cwd=here, env=env)

    (here / "roster.csv").write_text("student\nbob\n", encoding="utf-8")
    shutil.copytree(installed.labs / LAB / "solution", here / "subs" / "bob")
    _run(
        [
            "iiotlab",
            "class",
            "grade",
            "--lab",
            LAB,
            "--roster",
            "roster.csv",
            "--submissions",
            "subs",
            "--out",
            "class",
            "--parallel",
            "1",
        ],
        cwd=here,
        env=env,
    )
    with (here / "class" / "gradebook.csv").open(encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["student"] == "bob" and row["status"] == "graded", row
    print(f"README commands ran in {time.monotonic() - started:.1f} s")


def test_lab_list_says_when_no_lab_is_installed(installed: Installed, tmp_path: Path) -> None:
    hidden = installed.labs.with_name("iiotlab_labs.hidden")
    installed.labs.rename(hidden)
    try:
        done = subprocess.run(
            ["iiotlab", "lab", "list"],
            cwd=_outside(tmp_path),
            env=installed.env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        hidden.rename(installed.labs)
    assert done.returncode == 1
    assert "no labs found" in done.stderr and done.stdout == ""
