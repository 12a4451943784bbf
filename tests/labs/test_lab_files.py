"""The lab files agree with each other: READMEs in both languages, lab.yaml, the catalogue.

- README.en.md and README.zh.md have the same structure: headings (count and levels),
  numbered tasks per section, a points table whose rows are lab.yaml's checks and points,
  and how to grade locally (`iiotlab grade`);
- the curriculum covers every plant at least twice and every position except 9;
- docs/labs.md's labs table and positions x labs matrix equal what `iiotlab lab matrix`
  generates from the lab files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grader.curriculum import BEGIN, END, catalogue, generated_block, plants_usage
from grader.spec import POSITIONS
from tests.labs.curriculum import discover_labs
from tests.labs.readme_structure import parse_readme

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LABS = discover_labs()
LANGUAGES = ("en", "zh")
NOT_A_LAB_TARGET = 9


def lang_file(lang: str) -> str:
    return f"README.{lang}.md"


@pytest.mark.parametrize("lab", [pytest.param(lab, id=lab.id) for lab in LABS])
def test_readmes_have_the_same_structure(lab: object) -> None:
    from tests.labs.curriculum import Lab

    assert isinstance(lab, Lab)
    assert lab.spec is not None, f"{lab.id}: lab.yaml does not load: {lab.error}"
    missing = [
        f"README.{lang}.md" for lang in LANGUAGES if not (lab.path / lang_file(lang)).is_file()
    ]
    assert not missing, f"{lab.id}: missing {', '.join(missing)}"
    en, zh = (parse_readme(lab.path / lang_file(lang)) for lang in LANGUAGES)
    short = "-".join(lab.id.split("-")[:2])
    for readme in (en, zh):
        title = readme.headings[0] if readme.headings else None
        assert (
            title is not None
            and title[0] == 1
            and title[1].startswith((f"{short} — ", f"{lab.id} — "))
        ), f"{readme.path}: the first heading must be '# {lab.id} — <title>', got {title}"
        assert "iiotlab grade" in readme.text, (
            f"{readme.path}: say how to grade locally (iiotlab grade {lab.id} --student S ...)"
        )
        assert not readme.duplicate_rows, f"{readme.path}: rows twice: {readme.duplicate_rows}"
    assert [level for level, _ in en.headings] == [level for level, _ in zh.headings], (
        f"{lab.id}: heading levels differ\n en: {en.headings}\n zh: {zh.headings}"
    )
    assert en.task_counts == zh.task_counts, (
        f"{lab.id}: numbered tasks per section differ: en {en.task_counts}, zh {zh.task_counts}"
    )
    assert en.task_counts, f"{lab.id}: no numbered tasks (1., 2., ...) in the READMEs"
    for readme in (en, zh):
        for section in readme.sections:
            if section.tasks:
                assert section.tasks == list(range(1, len(section.tasks) + 1)), (
                    f"{readme.path}, {section.title!r}: tasks numbered {section.tasks}"
                )
    expected = {c.id: c.points for c in lab.spec.checks}
    for readme in (en, zh):
        assert readme.points == expected, (
            f"{readme.path}: the points table (| check | points |) must list exactly the "
            f"checks of lab.yaml with their points\n table:    {readme.points}\n"
            f" lab.yaml: {expected}"
        )


def test_every_plant_is_used_by_two_labs() -> None:
    usage = plants_usage(catalogue())
    few = {plant: labs for plant, labs in usage.items() if len(labs) < 2}
    assert not few, f"plants used by fewer than 2 labs: {few}"


def test_every_position_but_9_is_trained_by_a_lab() -> None:
    rows = catalogue()
    untrained = [
        f"{number} {name}"
        for number, name in POSITIONS.items()
        if number != NOT_A_LAB_TARGET and not any(number in row.positions for row in rows)
    ]
    assert not untrained, f"positions no lab trains: {untrained}"


def test_docs_labs_table_and_matrix_are_generated_from_the_lab_files() -> None:
    doc = (ROOT / "docs" / "labs.md").read_text(encoding="utf-8")
    assert BEGIN in doc and END in doc, "docs/labs.md lost its generated block markers"
    block = doc[doc.index(BEGIN) : doc.index(END) + len(END)]
    assert block == generated_block(catalogue()), (
        "docs/labs.md differs from the lab files: regenerate with "
        "`iiotlab lab matrix --write docs/labs.md`"
    )


def test_lab_matrix_check_command_tells_a_stale_doc(tmp_path: Path) -> None:
    doc = tmp_path / "labs.md"
    doc.write_text(f"# Labs\n\n{BEGIN}\n| stale |\n{END}\n\nafter\n", encoding="utf-8")
    command = [sys.executable, "-m", "iiotlab.cli", "lab", "matrix"]
    stale = subprocess.run([*command, "--check", str(doc)], capture_output=True, text=True)
    assert stale.returncode == 1 and "--write" in stale.stderr, stale
    written = subprocess.run([*command, "--write", str(doc)], capture_output=True, text=True)
    assert written.returncode == 0, written
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Labs\n\n") and text.endswith("\n\nafter\n")
    assert "| `net-01-modbus-datasheet` | network | 1, 15 | tank | 6 s | 100 |" in text
    fresh = subprocess.run([*command, "--check", str(doc)], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh


def test_lab_list_shows_track_positions_plants_duration_and_points() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "iiotlab.cli", "lab", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert listed[0].split()[:6] == ["lab", "track", "positions", "plant", "duration", "points"]
    rows = {line.split()[0]: line for line in listed[1:]}
    assert set(rows) == {row.id for row in catalogue()}
    net01 = rows["net-01-modbus-datasheet"].split()
    assert net01[1:6] == ["network", "1,15", "tank", "6s", "100"]
    for row in catalogue():
        if row.devices > 1:  # a multi-plant lab names its plants and devices
            assert f"({row.devices} devices)" in rows[row.id], rows[row.id]
