"""A small, dependency-free SVG line chart for :class:`~bastion.findings.Series`.

The HTML report draws every series with :func:`line_chart`: axes with "nice" ticks
(steps of 1, 2 or 5 times a power of ten), grid lines, axis labels, the curve with
its points, and a shaded confidence band when the series has ``y_low`` and
``y_high``. The output depends only on the input (coordinates are rounded to two
decimals), so reports are reproducible byte for byte, and every piece of text is
XML-escaped, so a label cannot inject markup.

Examples
--------
>>> from bastion.findings import Series
>>> from bastion.report.svg_plot import line_chart, nice_ticks
>>> nice_ticks(0.0, 0.97)
[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
>>> s = Series(name="accuracy", x_label="sigma", y_label="accuracy",
...            x=[0.0, 0.1, 0.2], y=[0.97, 0.80, 0.41],
...            y_low=[0.95, 0.76, 0.36], y_high=[0.98, 0.84, 0.46])
>>> svg = line_chart(s)
>>> svg.startswith("<svg") and 'class="band"' in svg and svg == line_chart(s)
True
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from bastion.errors import UsageError
from bastion.findings import Series

__all__ = ["ChartStyle", "line_chart", "nice_ticks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChartStyle:
    """Size and colours of a chart, in SVG user units and CSS colours."""

    width: int = 520
    height: int = 290
    margin_left: int = 60
    margin_right: int = 20
    margin_top: int = 34
    margin_bottom: int = 50
    line: str = "#1f5fbf"
    band: str = "#1f5fbf"
    band_opacity: float = 0.16
    axis: str = "#4a4f57"
    grid: str = "#e3e6ea"
    text: str = "#2b2f36"
    font: str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def _nice(value: float, *, round_: bool) -> float:
    """Heckbert's nice number: 1, 2, 5 or 10 times a power of ten close to ``value``."""
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    if round_:
        steps = ((1.5, 1.0), (3.0, 2.0), (7.0, 5.0))
        nice = next((n for limit, n in steps if fraction < limit), 10.0)
    else:
        nice = next((n for n in (1.0, 2.0, 5.0) if fraction <= n), 10.0)
    return float(nice * 10.0**exponent)


def _step_decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Evenly spaced round tick values that cover ``[low, high]``.

    Parameters
    ----------
    low, high : float
        The data range, ``low <= high``; both finite.
    target : int
        Roughly how many intervals to aim for.

    Returns
    -------
    list of float
        Ticks from at or below ``low`` to at or above ``high``, rounded so that
        ``0.1 + 0.2`` shows as ``0.3``.

    Raises
    ------
    UsageError
        If the range is not finite or ``low > high``.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise UsageError(f"A tick range needs finite low <= high; got [{low}, {high}].")
    if target < 1:
        raise UsageError(f"The tick target must be at least 1; got {target}.")
    if high - low <= max(1e-9 * max(abs(low), abs(high)), 1e-300):
        # A flat range (or one too narrow to draw): centre it in a padded window.
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    span = _nice(high - low, round_=False)
    step = _nice(span / target, round_=True)
    decimals = _step_decimals(step)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    last = max(last, first + 1)
    return [round(i * step, decimals) + 0.0 for i in range(first, last + 1)]


def _label(value: float, step: float) -> str:
    text = f"{value:.{_step_decimals(step)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _n(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _points(series: Series) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """Finite (x, y) points and (x, low, high) band points, sorted by x."""
    n = min(len(series.x), len(series.y))
    if len(series.x) != len(series.y):
        log.warning(
            "Series %r has %d x values and %d y values; plotting the first %d.",
            series.name,
            len(series.x),
            len(series.y),
            n,
        )
    pts = [
        (float(series.x[i]), float(series.y[i]))
        for i in range(n)
        if math.isfinite(series.x[i]) and math.isfinite(series.y[i])
    ]
    band: list[tuple[float, float, float]] = []
    if series.y_low is not None and series.y_high is not None:
        m = min(len(series.x), len(series.y_low), len(series.y_high))
        for i in range(m):
            x, lo, hi = series.x[i], series.y_low[i], series.y_high[i]
            if math.isfinite(x) and math.isfinite(lo) and math.isfinite(hi):
                band.append((float(x), float(min(lo, hi)), float(max(lo, hi))))
    pts.sort(key=lambda p: p[0])
    band.sort(key=lambda b: b[0])
    return pts, band


def line_chart(series: Series, style: ChartStyle | None = None) -> str:
    """Draw ``series`` as a standalone ``<svg>`` element.

    Parameters
    ----------
    series : Series
        The curve. Points whose coordinates are not finite are left out; a
        confidence band is drawn where ``y_low`` and ``y_high`` are both given.
    style : ChartStyle, optional
        Size and colours; the defaults suit the HTML report.

    Returns
    -------
    str
        SVG markup with ``role="img"`` and an ``aria-label``; it scales to the width
        of its container through its ``viewBox``.
    """
    st = style or ChartStyle()
    pts, band = _points(series)
    title = series.name or series.y_label
    aria = f"{title}: {series.y_label} against {series.x_label}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {st.width} {st.height}" width="{st.width}" height="{st.height}" '
        f"aria-label={quoteattr(aria)} font-family={quoteattr(st.font)}>"
    )
    out = [head, f"<title>{escape(aria)}</title>"]
    out.append(
        f'<text class="chart-title" x="{st.margin_left}" y="20" font-size="14" '
        f'font-weight="600" fill="{st.text}">{escape(title)}</text>'
    )
    left, top = st.margin_left, st.margin_top
    right, bottom = st.width - st.margin_right, st.height - st.margin_bottom

    def placeholder(message: str) -> str:
        out.append(
            f'<text x="{(left + right) / 2:g}" y="{(top + bottom) / 2:g}" font-size="13" '
            f'text-anchor="middle" fill="{st.text}">{escape(message)}</text></svg>'
        )
        return "".join(out)

    if not pts:
        return placeholder("No finite points to plot")
    xs = [p[0] for p in pts] + [b[0] for b in band]
    ys = [p[1] for p in pts] + [v for b in band for v in b[1:]]
    try:
        x_ticks = nice_ticks(min(xs), max(xs), target=6)
        y_ticks = nice_ticks(min(ys), max(ys), target=5)
    except (UsageError, OverflowError, ValueError, ZeroDivisionError):
        log.warning("Series %r spans a range too wide to plot.", series.name)
        return placeholder("Values span a range too wide to plot")
    if not all(math.isfinite(t) for t in (*x_ticks, *y_ticks)):
        return placeholder("Values span a range too wide to plot")
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x_step = x_ticks[1] - x_ticks[0]
    y_step = y_ticks[1] - y_ticks[0]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    # Grid and tick labels.
    for t in y_ticks:
        ty = _n(sy(t))
        out.append(
            f'<line class="grid" x1="{left}" y1="{ty}" x2="{right}" y2="{ty}" '
            f'stroke="{st.grid}" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick" x="{left - 8}" y="{ty}" font-size="11" text-anchor="end" '
            f'dominant-baseline="middle" fill="{st.text}">{escape(_label(t, y_step))}</text>'
        )
    for t in x_ticks:
        tx = _n(sx(t))
        out.append(
            f'<line class="grid" x1="{tx}" y1="{top}" x2="{tx}" y2="{bottom}" '
            f'stroke="{st.grid}" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick" x="{tx}" y="{bottom + 18}" font-size="11" '
            f'text-anchor="middle" fill="{st.text}">{escape(_label(t, x_step))}</text>'
        )

    # Confidence band: upper edge left to right, lower edge back.
    if len(band) >= 2:
        edge = [f"{_n(sx(x))},{_n(sy(hi))}" for x, _, hi in band]
        edge += [f"{_n(sx(x))},{_n(sy(lo))}" for x, lo, _ in reversed(band)]
        out.append(
            f'<polygon class="band" points="{" ".join(edge)}" fill="{st.band}" '
            f'fill-opacity="{st.band_opacity:g}" stroke="none"/>'
        )
    elif len(band) == 1:
        x, lo, hi = band[0]
        out.append(
            f'<line class="band" x1="{_n(sx(x))}" y1="{_n(sy(lo))}" x2="{_n(sx(x))}" '
            f'y2="{_n(sy(hi))}" stroke="{st.band}" stroke-opacity="0.5" stroke-width="6"/>'
        )

    # Axes.
    out.append(
        f'<path class="axis" d="M{left},{top} V{bottom} H{right}" fill="none" '
        f'stroke="{st.axis}" stroke-width="1.2"/>'
    )

    # Curve and points, each point with a tooltip.
    if len(pts) >= 2:
        coords = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in pts)
        out.append(
            f'<polyline class="line" points="{coords}" fill="none" stroke="{st.line}" '
            f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    band_at = {x: (lo, hi) for x, lo, hi in band}
    for x, y in pts:
        tip = f"{series.x_label} = {x:g}, {series.y_label} = {y:g}"
        if x in band_at:
            lo, hi = band_at[x]
            tip += f" [{lo:g}, {hi:g}]"
        out.append(
            f'<circle class="point" cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="3.2" '
            f'fill="{st.line}"><title>{escape(tip)}</title></circle>'
        )

    # Axis labels.
    mid_x, mid_y = (left + right) / 2, (top + bottom) / 2
    out.append(
        f'<text class="axis-label" x="{_n(mid_x)}" y="{st.height - 10}" font-size="12" '
        f'text-anchor="middle" fill="{st.text}">{escape(series.x_label)}</text>'
    )
    out.append(
        f'<text class="axis-label" x="16" y="{_n(mid_y)}" font-size="12" '
        f'text-anchor="middle" fill="{st.text}" '
        f'transform="rotate(-90 16 {_n(mid_y)})">{escape(series.y_label)}</text>'
    )
    if band:
        lx = right - 118
        out.append(
            f'<rect class="band" x="{lx}" y="12" width="14" height="10" fill="{st.band}" '
            f'fill-opacity="{st.band_opacity * 2:g}"/>'
            f'<text x="{lx + 20}" y="21" font-size="11" fill="{st.text}">confidence band</text>'
        )
    out.append("</svg>")
    return "".join(out)
