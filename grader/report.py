"""report.html (for the student) and junit.xml (for CI dashboards) from a Result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jinja2

from grader.charts import truth_vs_sent_svg
from grader.results import CheckResult, Result

TEMPLATES = Path(__file__).parent / "templates"


def _charts(check: CheckResult) -> list[str]:
    saw = check.evidence.get("saw")
    if check.passed or not isinstance(saw, dict):
        return []
    charts = []
    for tag, entry in saw.items():
        series = entry.get("series") if isinstance(entry, dict) else None
        if isinstance(series, dict) and series.get("ts"):
            title = f"{tag}: {entry.get('diagnosis', 'mismatch')}"
            charts.append(truth_vs_sent_svg(title, series["ts"], series["truth"], series["sent"]))
    return charts


def render_html(result: Result, titles: dict[str, str] | None = None) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    checks: list[dict[str, Any]] = [
        {
            **c.model_dump(),
            "charts": _charts(c),
            "evidence_json": json.dumps(c.evidence, indent=1, ensure_ascii=False)[:20000],
        }
        for c in result.checks
    ]
    titles = titles or {}
    return environment.get_template("report.html.j2").render(
        result=result,
        checks=checks,
        lang="en",
        title_en=titles.get("en", result.lab),
        title_zh=titles.get("zh", result.lab),
    )


def render_junit(result: Result) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name=f"{result.lab}:{result.student}",
        tests=str(len(result.checks)),
        failures=str(sum(1 for c in result.checks if not c.passed)),
        errors="0" if result.gradable else "1",
    )
    if not result.gradable:
        case = ElementTree.SubElement(suite, "testcase", classname=result.lab, name="gradable")
        ElementTree.SubElement(case, "error", message=result.reason or "not gradable")
    for check in result.checks:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=result.lab,
            name=check.id,
        )
        ElementTree.SubElement(case, "properties").append(
            ElementTree.Element(
                "property", name="points", value=f"{check.points:g}/{check.max_points:g}"
            )
        )
        if not check.passed:
            failure = ElementTree.SubElement(case, "failure", message=check.message)
            failure.text = (
                f"hint: {check.hint.get('en', '')}\n"
                + json.dumps(check.evidence, ensure_ascii=False)[:4000]
            )
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def write_reports(result: Result, out_dir: Path, titles: dict[str, str] | None = None) -> None:
    (out_dir / "report.html").write_text(render_html(result, titles), encoding="utf-8")
    (out_dir / "junit.xml").write_text(render_junit(result), encoding="utf-8")
