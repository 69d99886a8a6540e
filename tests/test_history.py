"""Rebuild running totals over time from the ledger, bucketed, after an optional moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rome.history import WIDTHS, bucket_width, race_history
from rome.models import LedgerRow

START = datetime(2016, 11, 8, 20, 0, 0, tzinfo=UTC)


def add(session, n: int, candidate: int, votes: int, seconds: float, source: str = "ap"):
    session.add(LedgerRow(
        update_id=f"{source}:{n}:0:{candidate}", source_id=source, candidate_id=candidate,
        tick=n, unit=0, votes=votes, emitted_at=START,
        applied_at=START + timedelta(seconds=seconds),
    ))


def test_no_ledger_rows_means_no_points(database):
    with database.Session() as session:
        history = race_history(session, 1)
    assert history.candidate_ids == [101, 102, 103, 104]
    assert history.points == [] and history.baseline == [0, 0, 0, 0]
    assert history.to_json()["since"] is None


def test_points_are_running_totals_at_each_bucket(database):
    with database.Session.begin() as session:
        add(session, 1, 101, 100, 0)
        add(session, 2, 102, 50, 10)
        add(session, 3, 101, 5, 10.5)
        add(session, 4, 104, 7, 30)
        add(session, 5, 201, 999, 20, source="mc")  # another race: left out
    with database.Session() as session:
        history = race_history(session, 1)
    assert history.bucket_seconds == 1
    assert [votes for _, votes in history.points] == [
        [100, 0, 0, 0],
        [105, 50, 0, 0],
        [105, 50, 0, 7],
    ]
    # Each point stands at the newest update in its bucket.
    assert [at for at, _ in history.points] == [
        START, START + timedelta(seconds=10.5), START + timedelta(seconds=30)
    ]


def test_since_keeps_what_came_before_as_the_baseline(database):
    with database.Session.begin() as session:
        add(session, 1, 201, 100, 0, source="mc")
        add(session, 2, 202, 40, 5, source="mc")
        add(session, 3, 201, 1, 60, source="mc")
    with database.Session() as session:
        history = race_history(session, 2, since=START + timedelta(seconds=5))
        later = race_history(session, 2, since=START + timedelta(hours=1))
    assert history.baseline == [100, 40]
    assert [votes for _, votes in history.points] == [[101, 40]]
    assert later.baseline == [101, 40] and later.points == []
    # A since with another offset is the same moment in UTC.
    assert history.to_json()["since"] == "2016-11-08T20:00:05+00:00"


def test_a_long_night_is_cut_into_at_most_max_points(database):
    with database.Session.begin() as session:
        for n in range(600):
            add(session, n, 301 + n % 2, 10, n * 37.0, source="sos")
    with database.Session() as session:
        history = race_history(session, 3, max_points=50)
    assert len(history.points) <= 50
    assert history.bucket_seconds in WIDTHS and history.bucket_seconds >= 600 * 37 / 49
    assert history.points[-1][1] == [3000, 3000]
    assert all(a[1][0] <= b[1][0] and a[0] < b[0] for a, b in zip(
        history.points, history.points[1:], strict=False
    ))


@given(first=st.floats(0, 2e9), span=st.floats(0, 1e8), points=st.integers(2, 1000))
def test_bucket_width_fits_the_span_in_the_points(first, span, points):
    width = bucket_width(first, first + span, points)
    assert width >= 1
    assert span / width <= points - 1 + 1e-9
