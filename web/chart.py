"""Lay out a race's totals over time as an SVG line chart, one line per candidate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rome.read.history import RaceHistory
from rome.read.results import CandidateView

# The page's party colours (static/style.css); the SVG is an image, so it cannot read them.
PARTY_COLORS = {"GOP": "#c0392b", "DEM": "#1f5fae", "LIB": "#d4a017", "GRN": "#2e8540"}
OTHER_COLOR = "#7a7f87"
DASHES = ("", "7 4", "2 3", "10 3 2 3")


@dataclass
class Line:
    label: str
    color: str
    dash: str
    points: str
    votes: int


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.lines


def axis_ticks(value: float, about: int = 4) -> list[float]:
    """Return round tick values from 0 up to at least value, about `about` steps of 1, 2 or 5."""
    if value <= 0:
        return [0, 1]
    rough = value / about
    power = 10 ** math.floor(math.log10(rough))
    # Votes are whole: a step below one would label two ticks alike.
    step = max(1, next(m * power for m in (1, 2, 5, 10) if rough <= m * power))
    return [step * i for i in range(math.ceil(value / step) + 1)]


def short_number(value: float) -> str:
    """Write an axis value briefly: 950, 12k, 1.5M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def _time_label(moment: datetime, span: timedelta) -> str:
    if span > timedelta(days=1):
        return moment.strftime("%d %b %H:%M")
    return moment.strftime("%H:%M" if span > timedelta(minutes=10) else "%H:%M:%S")


def _steps(points: list[tuple[float, float]]) -> str:
    # A total holds until the next batch lands, then jumps: draw steps, not slopes.
    path = [points[0]]
    for (_, previous_y), (x, y) in zip(points, points[1:], strict=False):
        path += [(x, previous_y), (x, y)]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in path)


def line_chart(
    history: RaceHistory, candidates: list[CandidateView], width: int = 720, height: int = 300
) -> Chart:
    """Scale history into a width x height chart with axes and one line per candidate."""
    chart = Chart(width, height, left=48, top=14, right=width - 14, bottom=height - 28)
    if not history.points:
        return chart
    first_at = history.points[0][0]
    start = history.since or first_at - timedelta(seconds=history.bucket_seconds)
    # The running totals start from the baseline, before the first point.
    series = [(start, history.baseline), *history.points]
    end = series[-1][0]
    span = max(end - start, timedelta(seconds=1))
    ticks = axis_ticks(max(max(votes) for _, votes in series))
    top_value = ticks[-1]

    def x(moment: datetime) -> float:
        return chart.left + (chart.right - chart.left) * ((moment - start) / span)

    def y(value: float) -> float:
        return chart.bottom - (chart.bottom - chart.top) * value / top_value

    chart.y_ticks = [(y(value), short_number(value)) for value in ticks]
    chart.x_ticks = [
        (x(start + span * i / 2), _time_label(start + span * i / 2, span)) for i in range(3)
    ]
    by_id = {c.id: c for c in candidates}
    seen_parties: dict[str, int] = {}
    for index, candidate_id in enumerate(history.candidate_ids):
        candidate = by_id.get(candidate_id)
        party = candidate.party if candidate else ""
        # Two candidates of one party share a colour; a dash tells them apart.
        repeat = seen_parties[party] = seen_parties.get(party, -1) + 1
        chart.lines.append(
            Line(
                label=f"{candidate.first} {candidate.last}" if candidate else str(candidate_id),
                color=PARTY_COLORS.get(party, OTHER_COLOR),
                dash=DASHES[repeat % len(DASHES)],
                points=_steps([(x(at), y(votes[index])) for at, votes in series]),
                votes=series[-1][1][index],
            )
        )
    return chart
