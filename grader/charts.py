"""Inline SVG line charts (truth vs what the gateway sent), drawn server-side, no CDN."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 560, 200, 36
LEFT = 72  # room for an axis label such as "−1.23×10⁻⁴¹"
MINUS = "\u2212"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def axis_label(value: float) -> str:
    """A number as a reader writes it: 4 significant digits, powers of ten when tiny or huge.

    1.5e-41 -> "1.5×10⁻⁴¹", 3.2e9 -> "3.2×10⁹", -12.5 -> "−12.5" (a real minus sign).
    """
    if not math.isfinite(value):
        return "∞" if value > 0 else (MINUS + "∞" if value < 0 else "NaN")
    if value == 0:
        return "0"
    sign = MINUS if value < 0 else ""
    size = abs(value)
    exponent = math.floor(math.log10(size))
    if -3 <= exponent < 6:
        text = f"{size:.{max(0, 3 - exponent)}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return sign + text
    mantissa = f"{size / 10**exponent:.3g}"
    if mantissa == "10":  # 9.9995 rounded up
        mantissa, exponent = "1", exponent + 1
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return sign + (power if mantissa == "1" else f"{mantissa}×{power}")


def _numbers(values: Sequence[object]) -> list[float | None]:
    out: list[float | None] = []
    for value in values:
        if isinstance(value, (bool, int | float)) and math.isfinite(float(value)):
            out.append(float(value))
        else:
            out.append(None)
    return out


def _y(value: float, lo: float, hi: float) -> float:
    span = (hi - lo) or 1.0
    return HEIGHT - PAD - (min(max(value, lo), hi) - lo) / span * (HEIGHT - 2 * PAD)


def _path(
    ts: Sequence[int], ys: Sequence[float | None], x0: int, x1: int, lo: float, hi: float
) -> str:
    span_t = max(x1 - x0, 1)
    points = []
    for t, y in zip(ts, ys, strict=False):
        if y is None:
            continue
        x = LEFT + (t - x0) / span_t * (WIDTH - LEFT - PAD)
        points.append(f"{x:.1f},{_y(y, lo, hi):.1f}")
    return " ".join(points)


def _range(truth: list[float | None], sent: list[float | None]) -> tuple[float, float]:
    """The y range: the truth's (or what was sent, without truth), with a margin."""
    known = [y for y in truth if y is not None] or [y for y in sent if y is not None] or [0.0]
    lo, hi = min(known), max(known)
    margin = (hi - lo) * 0.2 or (abs(hi) * 0.1 if hi else 1.0)
    return lo - margin, hi + margin


def _axis(lo: float, hi: float) -> str:
    """Labels at the bottom, middle and top of the y axis, right-aligned beside it."""
    labels = []
    for value in (lo, (lo + hi) / 2, hi):
        y = _y(value, lo, hi)
        labels.append(
            f'<text x="{LEFT - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
            f"{escape(axis_label(value))}</text>"
            f'<line x1="{LEFT - 3}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#999"/>'
        )
    return "".join(labels)


def truth_vs_sent_svg(
    title: str, ts: Sequence[int], truth: Sequence[object], sent: Sequence[object]
) -> str:
    """An SVG chart; the y range follows the truth so wild sent values clip at the edges."""
    truth_y, sent_y = _numbers(truth), _numbers(sent)
    lo, hi = _range(truth_y, sent_y)
    x0, x1 = (ts[0], ts[-1]) if ts else (0, 1)
    seconds = (x1 - x0) / 1000
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ccc"/>'
        f'<text x="{PAD}" y="16" font-size="12">{escape(title)}</text>'
        f'<line x1="{LEFT}" y1="{PAD}" x2="{LEFT}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f"{_axis(lo, hi)}"
        f'<text x="{WIDTH - PAD - 40}" y="{HEIGHT - 8}" font-size="10">{seconds:.0f} s</text>'
        f'<polyline fill="none" stroke="#2a7" stroke-width="2" '
        f'points="{_path(ts, truth_y, x0, x1, lo, hi)}"/>'
        f'<polyline fill="none" stroke="#d33" stroke-width="1.5" stroke-dasharray="4 2" '
        f'points="{_path(ts, sent_y, x0, x1, lo, hi)}"/>'
        f'<text x="{WIDTH - 200}" y="16" font-size="11" fill="#2a7">— simulator (truth)</text>'
        f'<text x="{WIDTH - 100}" y="16" font-size="11" fill="#d33">-- gateway sent</text>'
        "</svg>"
    )
