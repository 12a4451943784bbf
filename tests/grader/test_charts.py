"""report.html charts: axis labels read well for tiny, huge and negative values."""

from __future__ import annotations

import re

import pytest

from grader.charts import truth_vs_sent_svg

pytestmark = pytest.mark.unit

TS = [0, 1000, 2000, 3000]


def labels(svg: str) -> list[str]:
    """The y axis labels, bottom to top."""
    return re.findall(r'text-anchor="end">([^<]+)</text>', svg)


@pytest.mark.parametrize(
    ("truth", "middle"),
    [
        ([1.5e-41] * 4, "1.5×10⁻⁴¹"),  # a float32 read in the wrong byte order
        ([3.2e9] * 4, "3.2×10⁹"),
        ([-5.0, -20.0, -5.0, -20.0], "−12.5"),  # a real minus sign
        ([0.0, 2.5, 5.0, 2.5], "2.5"),
        ([1.0005, 1.0015, 1.001, 1.0], "1.001"),
    ],
)
def test_axis_labels_read_well(truth: list[float], middle: str) -> None:
    svg = truth_vs_sent_svg("level: word order", TS, truth, [0.0] * 4)
    found = labels(svg)
    assert len(found) == 3 and found[1] == middle, found
    assert all(len(label) <= 11 for label in found), found  # fits beside the axis


def test_labels_of_a_tiny_series_never_lose_their_exponent() -> None:
    found = labels(truth_vs_sent_svg("t", TS, [1.4e-41, 1.5e-41, 1.6e-41, 1.5e-41], [1, 2, 3, 4]))
    assert found == ["1.36×10⁻⁴¹", "1.5×10⁻⁴¹", "1.64×10⁻⁴¹"]
    assert "41" not in [label.strip() for label in found]
