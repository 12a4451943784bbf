"""docs/ documents every CLI command, setting and check kind (a test fails otherwise)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from iiotlab.cli import build_app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))


def _commands(group: Any, prefix: str) -> list[tuple[str, Any]]:
    """(path, command) of every command; typer vendors click, so test by duck typing."""
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        found.append((path, command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
    return found


def test_every_cli_command_is_documented() -> None:
    docs = _docs_text()
    commands = _commands(get_command(build_app()), "iiotlab")
    assert len(commands) > 5
    missing = [path for path, _ in commands if f"`{path}" not in docs]
    assert not missing, f"undocumented commands (write them as `iiotlab ...` in docs/): {missing}"


def test_every_option_is_documented() -> None:
    docs = _docs_text()
    missing = []
    for path, command in _commands(get_command(build_app()), "iiotlab"):
        for param in command.params:
            long_options = [opt for opt in param.opts if opt.startswith("--")]
            if long_options and not any(opt in docs for opt in long_options):
                missing.append(f"{path} {param.opts[0]}")
    assert not missing, f"undocumented options: {missing}"


def test_every_setting_is_documented() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for package in ("iiotlab", "simulators", "edge_gateway", "iiot_platform", "grader")
        for p in (ROOT / package).rglob("*.py")
    )
    names = set(re.findall(r"\bIIOTLAB_[A-Z_]+\b", sources))
    docs = _docs_text()
    missing = sorted(name for name in names if name not in docs)
    assert not missing, f"undocumented settings: {missing}"


def test_every_check_kind_is_documented() -> None:
    registry = pytest.importorskip("grader.checks.registry")
    kinds = registry.known_kinds()
    docs = _docs_text()
    missing = [kind for kind in kinds if f"`{kind}`" not in docs]
    assert not missing, f"undocumented check kinds: {missing}"
