"""End of exam: per candidate a signed exam result, the gradebook, a certificate for a pass
(printable HTML embedding the signed record that `iiotlab verify` checks), a summary page.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.exam.state import candidate_points, total
from grader.results import canonical_json

if TYPE_CHECKING:
    from grader.exam.service import ExamService

CERTIFICATE_SCRIPT_ID = "iiotlab-certificate"


def verification_code(signed: dict[str, Any]) -> str:
    """A short code printed on the certificate: the start of the signed record's hash."""
    digest = hashlib.sha256(canonical_json(signed)).hexdigest()[:16].upper()
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def _record(service: ExamService, student: str) -> dict[str, Any]:
    exam = service.exam
    candidate = service.candidates[student]
    points = candidate_points(exam, candidate)
    score = total(points)
    return {
        "kind": "iiotlab-exam-result",
        "exam": exam.spec.id,
        "title": exam.spec.title.model_dump(),
        "position": exam.spec.position,
        "position_name": exam.spec.position_name,
        "student": student,
        "score": score,
        "max_score": exam.spec.max_points,
        "pass_mark_percent": exam.spec.pass_mark,
        "passed": score >= exam.spec.max_points * exam.spec.pass_mark / 100,
        "counts": exam.spec.counts,
        "tasks": {t.id: {"points": points[t.id], "max_points": t.spec.points} for t in exam.tasks},
        "attempts": [
            {
                "task": a.task,
                "number": a.number,
                "state": a.state,
                "score": a.result.score if a.result else None,
                "result_signature": a.result.signature if a.result else None,
            }
            for a in candidate.attempts
        ],
        "extra_time_percent": candidate.extra_percent,
        "date": datetime.now(UTC).date().isoformat(),
        "audit_head": service.audit.head,
    }


def certificate_html(signed: dict[str, Any]) -> str:
    esc = html.escape
    embedded = json.dumps(signed, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="zh"><head><meta charset="utf-8">
<title>{esc(signed["exam"])} — {esc(signed["student"])}</title>
<style>body{{font-family:serif;max-width:800px;margin:40px auto;border:6px double #333;
padding:40px;text-align:center}} h1{{font-size:2em}} .code{{font-family:monospace;
font-size:1.3em}} @media print{{body{{border-color:#000}}}}</style></head><body>
<h1>证书 · Certificate</h1>
<p>兹证明 / This certifies that</p>
<h2>{esc(signed["student"])}</h2>
<p>通过了 / passed the practical exam</p>
<h3>{esc(signed["title"]["zh"])}<br>{esc(signed["title"]["en"])}</h3>
<p>岗位 / Position: {signed["position"]} — {esc(signed["position_name"])}</p>
<p>成绩 / Score: {signed["score"]:g} / {signed["max_score"]:g}</p>
<p>日期 / Date: {esc(signed["date"])}</p>
<p>验证码 / Verification code: <span class="code">{verification_code(signed)}</span></p>
<p><small>iiotlab verify &lt;this file&gt; checks the signed record embedded here.</small></p>
<script type="application/json" id="{CERTIFICATE_SCRIPT_ID}">{embedded}</script>
</body></html>
"""


def read_certificate(path: Path) -> dict[str, Any]:
    """The signed record embedded in a certificate page."""
    text = path.read_text(encoding="utf-8")
    marker = f'id="{CERTIFICATE_SCRIPT_ID}">'
    start = text.find(marker)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        from iiotlab.errors import ConfigError

        raise ConfigError("no signed record in this certificate page", file=path)
    data = json.loads(text[start + len(marker) : end].replace("<\\/", "</"))
    if not isinstance(data, dict):
        from iiotlab.errors import ConfigError

        raise ConfigError("the certificate's record is not a JSON object", file=path)
    return data


def distribution_svg(scores: list[float], max_score: float, bins: int = 10) -> str:
    """A histogram of the scores: candidates per tenth of the total."""
    counts = [0] * bins
    for score in scores:
        index = min(bins - 1, int(bins * score / max_score)) if max_score else 0
        counts[index] += 1
    top = max(counts) or 1
    width, height, bar = 420, 220, 36
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}">']
    for i, count in enumerate(counts):
        h = height * count / top
        x = 20 + i * (bar + 4)
        parts.append(
            f'<rect x="{x}" y="{height - h:.1f}" width="{bar}" height="{h:.1f}" fill="#4a7"/>'
            f'<text x="{x + bar / 2}" y="{height - h - 4:.1f}" font-size="12" '
            f'text-anchor="middle">{count or ""}</text>'
            f'<text x="{x + bar / 2}" y="{height + 16}" font-size="10" text-anchor="middle">'
            f"{int(100 * i / bins)}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _summary_html(service: ExamService, records: list[dict[str, Any]]) -> str:
    exam = service.exam.spec
    rows = "".join(
        f"<tr><td>{html.escape(r['student'])}</td><td>{r['score']:g}</td>"
        f"<td>{'✔' if r['passed'] else '✘'}</td></tr>"
        for r in records
    )
    passed = sum(r["passed"] for r in records)
    chart = distribution_svg([r["score"] for r in records], exam.max_points)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(exam.id)} summary</title></head><body style="font-family:sans-serif">
<h1>{html.escape(exam.title.zh)} / {html.escape(exam.title.en)}</h1>
<p>考生 / candidates: {len(records)} · 通过 / passed: {passed} ·
及格线 / pass mark: {exam.pass_mark:g}% of {exam.max_points:g}</p>
<h2>成绩分布 / Score distribution</h2>{chart}
<table border="1" cellpadding="4"><tr><th>candidate</th><th>score</th><th>pass</th></tr>
{rows}</table></body></html>
"""


def close_exam(service: ExamService) -> dict[str, Any]:
    """Write every output; returns where they are (also audited)."""
    out = service.out_dir
    exam = service.exam
    (out / "certificates").mkdir(parents=True, exist_ok=True)
    records = []
    for student in service.candidates:
        record = _record(service, student)
        signed = {**record, "signature": service.config.key.sign(record)}
        folder = out / "results" / student
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exam-result.json").write_text(
            json.dumps(signed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if signed["passed"]:
            (out / "certificates" / f"{student}.html").write_text(
                certificate_html(signed), encoding="utf-8"
            )
        records.append(signed)
    with (out / "gradebook.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *(t.id for t in exam.tasks), "score", "max_score", "passed"])
        for r in records:
            cells = [r["tasks"][t.id]["points"] for t in exam.tasks]
            writer.writerow(
                [
                    r["student"],
                    *("" if c is None else f"{c:g}" for c in cells),
                    f"{r['score']:g}",
                    f"{r['max_score']:g}",
                    "yes" if r["passed"] else "no",
                ]
            )
    (out / "summary.html").write_text(_summary_html(service, records), encoding="utf-8")
    closing = {
        "gradebook": str(out / "gradebook.csv"),
        "summary": str(out / "summary.html"),
        "certificates": sorted(r["student"] for r in records if r["passed"]),
    }
    service.audit.append("results_written", "server", **closing)
    return closing
