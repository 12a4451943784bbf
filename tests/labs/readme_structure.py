"""The structure of a lab README, for comparing README.en.md with README.zh.md.

Headings (level and order), the numbered tasks of each section, and the points table
(`| check | points |`: its rows' first two cells). Fenced code blocks are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
TASK = re.compile(r"^(\d+)\.\s+\S")  # a top-level numbered item (no indentation)
ROW = re.compile(r"^\|(.+)\|\s*$")
POINTS = re.compile(r"^\s*(\d+(?:\.\d+)?)")


@dataclass
class Section:
    level: int
    title: str
    tasks: list[int] = field(default_factory=list)  # the numbers of its numbered items


@dataclass
class ReadmeStructure:
    path: Path
    sections: list[Section]
    points: dict[str, float]  # check id -> points, from the table's rows
    duplicate_rows: list[str]
    text: str

    @property
    def headings(self) -> list[tuple[int, str]]:
        return [(s.level, s.title) for s in self.sections if s.level]

    @property
    def task_counts(self) -> list[int]:
        """Numbered items per section that has any, in order."""
        return [len(s.tasks) for s in self.sections if s.tasks]


def _cells(line: str) -> list[str]:
    match = ROW.match(line.strip())
    return [c.strip().strip("`").strip() for c in match.group(1).split("|")] if match else []


def parse_readme(path: Path) -> ReadmeStructure:
    text = path.read_text(encoding="utf-8")
    sections = [Section(0, "")]
    points: dict[str, float] = {}
    duplicates: list[str] = []
    in_fence = False
    column: int | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = HEADING.match(line)
        if heading:
            sections.append(Section(len(heading.group(1)), heading.group(2)))
            column = None
            continue
        task = TASK.match(line)
        if task:
            sections[-1].tasks.append(int(task.group(1)))
        cells = _cells(line)
        if not cells:
            column = None
            continue
        header = _points_column(cells)
        if header is not None and not points:
            column = header  # the points table: the first with a check and a points column
            continue
        if column is None or set(cells[0]) <= set("-: ") or len(cells) <= column:
            continue
        number = POINTS.match(cells[column])
        if number is None:
            continue
        if cells[0] in points:
            duplicates.append(cells[0])
        points[cells[0]] = float(number.group(1))
    return ReadmeStructure(path, sections, points, duplicates, text)


CHECK_HEADERS = {"check", "检查", "检查项"}
POINTS_HEADERS = {"points", "分值", "分数", "得分"}


def _points_column(cells: list[str]) -> int | None:
    """The points column of a points table's header row (first cell: check)."""
    if cells[0].lower() not in CHECK_HEADERS:
        return None
    for index, cell in enumerate(cells[1:], start=1):
        if cell.lower() in POINTS_HEADERS:
            return index
    return None
