"""The SVG line chart."""

from __future__ import annotations

import itertools
import logging
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import UsageError
from bastion.findings import Series
from bastion.report.svg_plot import ChartStyle, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def _series(**kw: object) -> Series:
    base: dict[str, object] = {
        "name": "Accuracy against noise",
        "x_label": "sigma",
        "y_label": "accuracy",
        "x": [0.0, 0.1, 0.2, 0.3],
        "y": [0.97, 0.9, 0.7, 0.41],
    }
    base.update(kw)
    return Series.model_validate(base)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _points(el: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in el.attrib["points"].split()]  # type: ignore[misc]


@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    span=st.floats(0, 1e6, allow_nan=False),
    target=st.integers(2, 10),
)
def test_nice_ticks_cover_the_range_with_round_steps(low: float, span: float, target: int) -> None:
    high = low + span
    ticks = nice_ticks(low, high, target)
    assert len(ticks) >= 2
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    step = steps[0]
    # Covered up to float noise: at most a billionth of a step outside.
    assert ticks[0] <= low + 1e-9 * step
    assert ticks[-1] >= high - 1e-9 * step
    noise = 8 * math.ulp(max(abs(ticks[0]), abs(ticks[-1])))
    assert all(math.isclose(s, step, rel_tol=1e-6, abs_tol=noise) for s in steps)
    mean_step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    mantissa = mean_step / 10 ** math.floor(math.log10(mean_step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-4) for m in (1, 2, 5, 10))
    assert len(ticks) <= 4 * target + 2


def test_nice_ticks_examples() -> None:
    assert nice_ticks(0.0, 0.97) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.1, 0.3) == [0.1, 0.15, 0.2, 0.25, 0.3]
    assert nice_ticks(5.0, 5.0)[0] < 5.0 < nice_ticks(5.0, 5.0)[-1]
    with pytest.raises(UsageError):
        nice_ticks(1.0, 0.0)
    with pytest.raises(UsageError):
        nice_ticks(0.0, math.inf)


def test_chart_is_valid_svg_with_axes_labels_and_curve() -> None:
    svg = line_chart(_series())
    root = _parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.attrib["role"] == "img"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "sigma" in texts and "accuracy" in texts and "Accuracy against noise" in texts
    assert "0.2" in texts and "1.0" in texts  # tick labels
    line = root.find(f"{SVG}polyline")
    assert line is not None
    pts = _points(line)
    assert len(pts) == 4
    # x grows to the right, and lower accuracy is drawn lower (larger SVG y).
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)
    assert pts[0][1] < pts[-1][1]
    style = ChartStyle()
    for x, y in pts:
        assert style.margin_left <= x <= style.width - style.margin_right
        assert style.margin_top <= y <= style.height - style.margin_bottom
    assert len(list(root.iter(f"{SVG}circle"))) == 4
    assert root.find(f"{SVG}polygon") is None  # no band without bounds


def test_confidence_band_encloses_the_curve() -> None:
    s = _series(y_low=[0.95, 0.86, 0.65, 0.36], y_high=[0.98, 0.93, 0.74, 0.46])
    root = _parse(line_chart(s))
    band = root.find(f"{SVG}polygon")
    assert band is not None and band.attrib["class"] == "band"
    edge = _points(band)
    assert len(edge) == 8
    upper, lower = edge[:4], edge[4:][::-1]
    line = root.find(f"{SVG}polyline")
    assert line is not None
    for (_, yu), (_, yl), (_, y) in zip(upper, lower, _points(line), strict=True):
        assert yu <= y <= yl  # SVG y grows downwards
    assert "confidence band" in [t.text for t in root.iter(f"{SVG}text")]


def test_output_is_deterministic_and_unsorted_input_is_sorted() -> None:
    s = _series(x=[0.3, 0.0, 0.2, 0.1], y=[0.41, 0.97, 0.7, 0.9])
    assert line_chart(s) == line_chart(s)
    assert line_chart(s) == line_chart(_series())


def test_text_is_escaped() -> None:
    s = _series(name='<script>alert("x")</script>', x_label="a & b", y_label="<y>")
    svg = line_chart(s)
    assert "<script" not in svg
    root = _parse(svg)  # still well-formed XML
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert '<script>alert("x")</script>' in texts
    assert "a & b" in texts and "<y>" in texts


def test_non_finite_points_are_skipped() -> None:
    root = _parse(line_chart(_series(y=[0.97, math.nan, math.inf, 0.41])))
    line = root.find(f"{SVG}polyline")
    assert line is not None
    assert len(_points(line)) == 2
    text = ET.tostring(root, encoding="unicode").lower()
    assert not re.search(r"(?<![a-z])(nan|inf)(?![a-z])", text)


def test_degenerate_series() -> None:
    empty = _parse(line_chart(_series(x=[], y=[])))
    assert "No finite points to plot" in [t.text for t in empty.iter(f"{SVG}text")]
    single = _parse(line_chart(_series(x=[1.0], y=[0.5])))
    assert single.find(f"{SVG}polyline") is None
    assert len(list(single.iter(f"{SVG}circle"))) == 1
    flat = _parse(line_chart(_series(y=[0.5, 0.5, 0.5, 0.5])))
    assert flat.find(f"{SVG}polyline") is not None


def test_mismatched_lengths_plot_the_common_part(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion.report.svg_plot"):
        root = _parse(line_chart(_series(x=[0.0, 0.1, 0.2], y=[0.9, 0.8])))
    line = root.find(f"{SVG}polyline")
    assert line is not None and len(_points(line)) == 2
    assert "plotting the first 2" in caplog.text


@given(
    xs=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12),
    ys=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12),
)
def test_any_numbers_give_well_formed_svg(xs: list[float], ys: list[float]) -> None:
    root = _parse(line_chart(_series(x=xs, y=ys)))
    assert root.tag == f"{SVG}svg"
    for circle in root.iter(f"{SVG}circle"):
        assert math.isfinite(float(circle.attrib["cx"]))
        assert math.isfinite(float(circle.attrib["cy"]))
