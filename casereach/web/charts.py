"""Inline SVG bar charts, drawn on the server (no chart library, no script)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

WIDTH = 720
HEIGHT = 220
LEFT = 36
BOTTOM = 28
TOP = 10


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    label: str


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (y, text)
    labels: list[tuple[float, str]] = field(default_factory=list)  # (x, text) under the axis
    series: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[int]]] = field(default_factory=list)  # days with messages
    total: int = 0
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    left: int = LEFT
    # Where a chart too wide for the screen opens: at its last day (the newest, for a chart
    # of the past) rather than its first.
    open_at_end: bool = False


def _nice_max(value: int) -> int:
    """The smallest 4 x (1, 2 or 5) x 10^k at or above ``value``, so four grid steps are
    whole numbers."""
    step = 1
    while True:
        for mult in (1, 2, 5):
            if 4 * step * mult >= value:
                return 4 * step * mult
        step *= 10


def stacked_bars(
    title: str, days: Sequence[str], values: Mapping[str, Sequence[int]], series: Sequence[str]
) -> Chart:
    """One stacked bar per day; ``values[series][i]`` is the count of day ``i``."""
    chart = Chart(title=title, series=list(series))
    count = max(1, len(days))
    plot_w = WIDTH - LEFT - 8
    slot = plot_w / count
    bar_w = max(2.0, slot * 0.7)
    totals = [sum(values.get(s, [0] * count)[i] for s in series) for i in range(len(days))]
    top = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - BOTTOM - TOP
    chart.total = sum(totals)
    chart.rows = [
        (day, [values.get(s, [0] * count)[i] for s in series])
        for i, day in enumerate(days)
        if totals[i]
    ]
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = float(HEIGHT - BOTTOM)
        for s in series:
            v = values.get(s, [0] * count)[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            chart.bars.append(
                Bar(round(x, 1), round(y, 1), round(bar_w, 1), round(h, 1), s, v, day)
            )
        every = max(1, count // 6)
        if i % every == 0:
            chart.labels.append((round(x + bar_w / 2, 1), day[5:]))
    for k in range(5):
        value = top * k // 4
        chart.ticks.append((round(HEIGHT - BOTTOM - plot_h * k / 4, 1), str(value)))
    return chart
