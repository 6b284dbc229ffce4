"""Geometry of the small charts the pages draw as inline SVG (no script needed).

Each function takes what :mod:`ledgerflow.api` returned (days counted by state, a run's
timeline) and returns plain numbers and labels; the templates write the ``<rect>``s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    rects: list[Rect]
    labels: list[tuple[float, float, str]]  # x, y, text
    empty: bool = False


def stacked_days(days: Sequence[Any], states: Sequence[str], *, width: float = 600,
                 height: float = 90, noun: str = "runs") -> Chart:
    """One stacked bar per day, a segment per state (bottom to top in ``states`` order)."""
    top = max([sum(d.counts.values()) for d in days] or [0])
    step = width / max(len(days), 1)
    rects: list[Rect] = []
    plot = height - 14
    for i, day in enumerate(days):
        y = plot
        for state in states:
            n = day.counts.get(state, 0)
            if not n:
                continue
            h = max(plot * n / top, 1.0)
            y -= h
            rects.append(Rect(round(i * step + 1, 1), round(y, 1), round(max(step - 2, 1), 1),
                              round(h, 1), state, f"{day.day}: {n} {state} {noun}"))
    labels = []
    if days:
        labels = [(0, height - 2, days[0].day), (width, height - 2, days[-1].day)]
    return Chart(width, height, rects, labels, empty=top == 0)


LANE_HEIGHT = 18
LABEL_WIDTH = 110


def gantt(timeline: Any, *, width: float = 900) -> dict[str, Any]:
    """Lanes (one per worker, cache hits last) and one bar per task run.

    The bars come as ready markup (``bars``): a ``<a><rect><title>`` per task run, written
    here in one pass rather than by the template, as a 1,000-bar timeline is most of a run
    page's rendering. Every text in it is escaped (task names once per name); the rest are
    numbers and ids."""
    plot = width - LABEL_WIDTH - 10
    scale = plot / timeline.span if timeline.span > 0 else 0.0
    lane_y = {lane: 4 + i * LANE_HEIGHT for i, lane in enumerate(timeline.lanes)}
    names: dict[str, str] = {}
    parts = []
    h = LANE_HEIGHT - 5
    for bar in timeline.bars:
        x = round(LABEL_WIDTH + bar.start * scale, 1)
        w = round(max((bar.end - bar.start) * scale, 2.0), 1)
        task = names.get(bar.task)
        if task is None:
            task = names[bar.task] = str(escape(bar.task))
        status = escape(bar.status)
        parts.append(f'<a href="/task-runs/{escape(bar.task_run)}"><rect class="bar st-{status}" x="{x}" '
                     f'y="{lane_y[bar.lane] + 2}" width="{w}" height="{h}"><title>{task} {status} '
                     f'{bar.start:.2f}–{bar.end:.2f} s</title></rect></a>')
    height = 4 + len(timeline.lanes) * LANE_HEIGHT + 16
    ticks = [(LABEL_WIDTH + plot * k / 4, height - 3, f"{timeline.span * k / 4:.1f} s") for k in range(5)]
    return {"width": width, "height": height, "bars": Markup("".join(parts)), "ticks": ticks,
            "lanes": [(lane, lane_y[lane] + LANE_HEIGHT - 6) for lane in timeline.lanes]}
