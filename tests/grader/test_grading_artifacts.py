"""IIOTLAB_OUTPUT_DIR end to end: what a submission writes there reaches the checks and the
out folder, in either sandbox; a link placed there is reported, never followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.grader.test_sandbox import KINDS, grade

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERIES_CHECK = {
    "id": "series",
    "kind": "artifact_series_matches_truth",
    "points": 10,
    "params": {"file": "level.csv", "metric": "level", "from_s": 0, "settle_s": 0},
    "hint": {"en": "write level.csv", "zh": "写 level.csv"},
}
LINK_CHECK = {**SERIES_CHECK, "id": "link", "params": {**SERIES_CHECK["params"], "file": "key.csv"}}
SCRIPT = """
printf 'ts_ms,level\\n' > "$IIOTLAB_OUTPUT_DIR/level.csv.tmp"
mv "$IIOTLAB_OUTPUT_DIR/level.csv.tmp" "$IIOTLAB_OUTPUT_DIR/level.csv"
ln -s /etc/hostname "$IIOTLAB_OUTPUT_DIR/key.csv"
sleep 30
"""


@pytest.mark.parametrize("sandbox", KINDS)
async def test_output_files_reach_the_checks_and_the_out_folder(
    tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = await grade(
        tmp_path, SCRIPT, sandbox, monkeypatch, checks=[SERIES_CHECK, LINK_CHECK]
    )
    assert result.gradable, result.reason
    checks = {c.id: c for c in result.checks}
    # the header-only file was read: it has no rows, so every graded second is missing
    assert checks["series"].message.startswith("failed: level.csv read: 0 rows"), checks
    assert "key.csv was not read: a link: not read" in checks["link"].message
    copied = tmp_path / "out" / "mallory" / "output"
    assert (copied / "level.csv").read_text() == "ts_ms,level\n"
    assert not (copied / "key.csv").exists()
