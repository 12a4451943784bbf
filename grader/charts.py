"""Inline SVG line charts (truth vs what the gateway sent), drawn server-side, no CDN."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 560, 200, 36


def _numbers(values: Sequence[object]) -> list[float | None]:
    out: list[float | None] = []
    for value in values:
        if isinstance(value, (bool, int | float)):
            out.append(float(value))
        else:
            out.append(None)
    return out


def _path(
    ts: Sequence[int], ys: Sequence[float | None], x0: int, x1: int, lo: float, hi: float
) -> str:
    span_t = max(x1 - x0, 1)
    span_y = (hi - lo) or 1.0
    points = []
    for t, y in zip(ts, ys, strict=False):
        if y is None:
            continue
        x = PAD + (t - x0) / span_t * (WIDTH - 2 * PAD)
        v = HEIGHT - PAD - (min(max(y, lo), hi) - lo) / span_y * (HEIGHT - 2 * PAD)
        points.append(f"{x:.1f},{v:.1f}")
    return " ".join(points)


def truth_vs_sent_svg(
    title: str, ts: Sequence[int], truth: Sequence[object], sent: Sequence[object]
) -> str:
    """An SVG chart; the y range follows the truth so wild sent values clip at the edges."""
    truth_y, sent_y = _numbers(truth), _numbers(sent)
    known = [y for y in truth_y if y is not None] or [y for y in sent_y if y is not None] or [0.0]
    lo, hi = min(known), max(known)
    margin = (hi - lo) * 0.2 or max(abs(hi) * 0.1, 1.0)
    lo, hi = lo - margin, hi + margin
    x0, x1 = (ts[0], ts[-1]) if ts else (0, 1)
    seconds = (x1 - x0) / 1000
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ccc"/>'
        f'<text x="{PAD}" y="16" font-size="12">{escape(title)}</text>'
        f'<text x="4" y="{PAD}" font-size="10">{hi:.4g}</text>'
        f'<text x="4" y="{HEIGHT - PAD}" font-size="10">{lo:.4g}</text>'
        f'<text x="{WIDTH - PAD - 40}" y="{HEIGHT - 8}" font-size="10">{seconds:.0f} s</text>'
        f'<polyline fill="none" stroke="#2a7" stroke-width="2" '
        f'points="{_path(ts, truth_y, x0, x1, lo, hi)}"/>'
        f'<polyline fill="none" stroke="#d33" stroke-width="1.5" stroke-dasharray="4 2" '
        f'points="{_path(ts, sent_y, x0, x1, lo, hi)}"/>'
        f'<text x="{WIDTH - 200}" y="16" font-size="11" fill="#2a7">— simulator (truth)</text>'
        f'<text x="{WIDTH - 100}" y="16" font-size="11" fill="#d33">-- gateway sent</text>'
        "</svg>"
    )
