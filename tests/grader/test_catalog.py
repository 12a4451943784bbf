"""Lab lookup: built-in labs from the installed package, ids, folders, --labs, copy, show."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader.catalog import builtin_labs_dir, copy_lab, list_labs, readme_path, resolve_lab
from iiotlab.cli import build_app
from iiotlab.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REPO_LABS = sorted(p.parent.name for p in (ROOT / "labs").glob("*/lab.yaml"))
EDGE = "edge-01-modbus-to-mqtt"


def _own_lab(labs: Path, lab_id: str) -> Path:
    """An instructor's copy of edge-01 under another id (or the same id, to shadow it)."""
    folder = labs / lab_id
    shutil.copytree(ROOT / "labs" / EDGE, folder)
    spec = folder / "lab.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(EDGE, lab_id), encoding="utf-8")
    return folder


def test_builtin_labs_are_the_repository_labs() -> None:
    builtin = builtin_labs_dir()
    assert builtin is not None
    assert builtin.resolve() == (ROOT / "labs").resolve()  # the editable install maps labs/
    assert [entry.id for entry in list_labs()] == REPO_LABS
    assert all(entry.builtin for entry in list_labs())


def test_a_lab_id_resolves_from_any_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert (resolve_lab(EDGE) / "lab.yaml").is_file()


def test_a_folder_or_its_lab_yaml_resolves_to_itself(tmp_path: Path) -> None:
    folder = _own_lab(tmp_path, "my-lab")
    assert resolve_lab(str(folder)) == folder
    assert resolve_lab(folder / "lab.yaml") == folder / "lab.yaml"


def test_unknown_id_lists_the_known_ids() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_lab("edge-99-nothing")
    message = str(error.value)
    assert "unknown lab" in message and "edge-99-nothing" in message
    assert all(lab_id in message for lab_id in REPO_LABS)


def test_a_folder_without_lab_yaml_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no lab\.yaml in this folder"):
        resolve_lab(str(tmp_path))


def test_own_labs_folder_is_listed_first_and_shadows_builtin_ids(tmp_path: Path) -> None:
    own = _own_lab(tmp_path, "exam-01")
    shadow = _own_lab(tmp_path, EDGE)
    entries = list_labs(tmp_path)
    assert [(e.id, e.builtin) for e in entries[:2]] == [(EDGE, False), ("exam-01", False)]
    assert [e.id for e in entries[2:]] == [i for i in REPO_LABS if i != EDGE]
    assert resolve_lab("exam-01", tmp_path) == own
    assert resolve_lab(EDGE, tmp_path) == shadow
    with pytest.raises(ConfigError, match="exam-01"):
        resolve_lab("nope", tmp_path)


def test_missing_labs_folder_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--labs"):
        list_labs(tmp_path / "absent")


def test_copy_gives_readmes_and_starter_never_the_solution(tmp_path: Path) -> None:
    target = tmp_path / "work"
    written = copy_lab(resolve_lab(EDGE), target)
    names = sorted(p.relative_to(target).as_posix() for p in written)
    starter = ROOT / "labs" / EDGE / "starter"
    expected = ["README.en.md", "README.zh.md"] + [
        p.relative_to(starter).as_posix() for p in starter.rglob("*") if p.is_file()
    ]
    assert names == sorted(expected)
    assert (target / "gateway.py").read_bytes() == (starter / "gateway.py").read_bytes()
    assert not (target / "solution").exists() and not (target / "lab.yaml").exists()


def test_copy_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("# my work\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty"):
        copy_lab(resolve_lab(EDGE), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.py"]
    copy_lab(resolve_lab(EDGE), tmp_path / "empty")  # a new folder is fine
    (tmp_path / "also-empty").mkdir()
    copy_lab(resolve_lab(EDGE), tmp_path / "also-empty")  # and so is an empty one


def test_readme_in_a_missing_language_names_the_present_ones(tmp_path: Path) -> None:
    folder = _own_lab(tmp_path, "my-lab")
    (folder / "README.zh.md").unlink()
    with pytest.raises(ConfigError, match=r"README\.en\.md"):
        readme_path(folder, "zh")


def test_cli_lab_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(build_app(), ["lab", "list"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == ["lab", "track", "positions", "plant", "duration", "points", "title"]
    assert [line.split()[0] for line in rows] == REPO_LABS
    edge = next(line for line in rows if line.startswith(EDGE))
    assert edge.split()[1:6] == ["edge", "4,15", "tank", "38s", "100"]

    shown = runner.invoke(build_app(), ["lab", "show", EDGE, "--lang", "zh"])
    assert shown.exit_code == 0
    assert (
        shown.output.strip()
        == (ROOT / "labs" / EDGE / "README.zh.md").read_text(encoding="utf-8").strip()
    )

    copied = runner.invoke(build_app(), ["lab", "copy", EDGE, "work"])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "work" / "gateway.cmd").is_file()
    again = runner.invoke(build_app(), ["lab", "copy", EDGE, "work"])
    assert isinstance(again.exception, ConfigError)

    checked = runner.invoke(build_app(), ["lab", "check", EDGE])
    assert checked.exit_code == 0 and f'"id": "{EDGE}"' in checked.output
