"""SVG line charts of the last hour, rendered on the server (pure).

The appliance is offline, so the page cannot load a chart library from a CDN;
an inline SVG needs none, renders in the first HTML the server sends (no
script needed to see it) and is re-sent whole by the live update.  One chart
is a few polylines over a fixed one-hour time axis; a gap in the samples (the
daemon was down, a series had no requests) breaks the line instead of drawing
a false slope across it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

W, H = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 64, 10, 22, 22


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    color: str
    points: Sequence[tuple[float, float | None]]  # (time, value); None = no value


def nice_ceiling(v: float) -> float:
    """The smallest 1/2/5 x 10^n at or above ``v`` (the y axis' top)."""
    if v <= 0:
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= v:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def _segments(points: Sequence[tuple[float, float | None]], gap: float) -> list[list[tuple[float, float]]]:
    segs: list[list[tuple[float, float]]] = []
    cur: list[tuple[float, float]] = []
    last_t: float | None = None
    for t, v in points:
        if v is None or (last_t is not None and t - last_t > gap):
            if cur:
                segs.append(cur)
            cur = []
        if v is not None:
            cur.append((t, v))
        last_t = t
    if cur:
        segs.append(cur)
    return segs


def line_chart(chart_id: str, title: str, series: Sequence[Series], *, now: float,
               window: float, interval: float, fmt: Callable[[float], str]) -> str:
    """One ``<svg id=chart_id>`` with ``series`` over ``[now - window, now]``."""
    values = [v for s in series for _, v in s.points if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    t0 = now - window

    def x(t: float) -> float:
        return LEFT + pw * min(max((t - t0) / window, 0.0), 1.0)

    def y(v: float) -> float:
        return TOP + ph * (1 - min(v / top, 1.0))

    out = [f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{LEFT}" y="14" class="title">{escape(title)}</text>']
    for frac in (0.0, 0.5, 1.0):
        gy = TOP + ph * (1 - frac)
        out.append(f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{W - RIGHT}" y2="{gy:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 4}" y="{gy + 4:.1f}" class="axis" text-anchor="end">'
                   f'{escape(fmt(top * frac))}</text>')
    for frac, label in ((0.0, f"-{window / 60:.0f} min"), (0.5, f"-{window / 120:.0f} min"), (1.0, "now")):
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        out.append(f'<text x="{LEFT + pw * frac:.1f}" y="{H - 6}" class="axis" '
                   f'text-anchor="{anchor}">{label}</text>')
    legend_x = W - RIGHT
    for s in reversed(series):
        legend_x -= 8 + 7 * len(s.label)
        out.append(f'<text x="{legend_x:.0f}" y="14" class="legend" fill="{escape(s.color)}">'
                   f'{escape(s.label)}</text>')
    for s in series:
        for seg in _segments(s.points, gap=2.5 * interval):
            pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in seg)
            if len(seg) == 1:
                cx, cy = x(seg[0][0]), y(seg[0][1])
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2" fill="{escape(s.color)}" '
                           f'class="series" data-series="{escape(s.label)}"/>')
            else:
                out.append(f'<polyline points="{pts}" fill="none" stroke="{escape(s.color)}" '
                           f'stroke-width="1.5" class="series" data-series="{escape(s.label)}"/>')
    out.append("</svg>")
    return "".join(out)
