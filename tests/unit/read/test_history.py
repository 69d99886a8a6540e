"""Read running totals over time from the series of changes, bucketed, after a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rome.read.history import WIDTHS, bucket_width, race_history
from rome.store.tally import record_snapshots, wipeout
from tests.helpers.builders import race_snapshot

START = datetime(2016, 11, 8, 20, 0, 0, tzinfo=UTC)


def report(session, source: str, version: int, figures: dict[int, int], seconds: float, **kw):
    """Record source's snapshot at version as if it had been applied seconds after START."""
    record_snapshots(session, [race_snapshot(source, version, figures, **kw)],
                     applied_at=START + timedelta(seconds=seconds))


def votes(history) -> list[list[int]]:
    return [v for _, v in history.points]


def test_no_history_means_no_points(database):
    with database.Session() as session:
        history = race_history(session, 1)
    assert history.candidate_ids == [101, 102, 103, 104]
    assert history.points == [] and history.baseline == [0, 0, 0, 0]
    assert history.to_json()["since"] is None and history.to_json()["source"] is None


def test_points_are_running_totals_at_each_bucket(database):
    with database.Session.begin() as session:
        report(session, "ap", 1, {101: 100}, 0)
        report(session, "ap", 2, {102: 50}, 10)
        report(session, "ap", 3, {101: 105}, 10.5)
        report(session, "ap", 4, {104: 7}, 30)
        report(session, "mc", 5, {201: 999}, 20)  # another race: left out
    with database.Session() as session:
        history = race_history(session, 1)
    assert history.bucket_seconds == 1 and history.source == "ap"
    assert votes(history) == [[100, 0, 0, 0], [105, 50, 0, 0], [105, 50, 0, 7]]
    # Each point stands at the newest change in its bucket.
    assert [at for at, _ in history.points] == [
        START, START + timedelta(seconds=10.5), START + timedelta(seconds=30)
    ]


def test_a_correction_lowers_the_line_and_a_resent_figure_adds_no_point(database):
    with database.Session.begin() as session:
        report(session, "ap", 1, {101: 100, 102: 80}, 0)
        report(session, "ap", 2, {101: 90, 102: 80}, 10)  # Trump corrected down
        report(session, "ap", 3, {101: 90, 102: 80}, 20)  # nothing changed
        report(session, "ap", 2, {101: 500}, 30)  # an old version again: ignored
    with database.Session() as session:
        history = race_history(session, 1)
        since = race_history(session, 1, since=START + timedelta(seconds=5))
    assert votes(history) == [[100, 80, 0, 0], [90, 80, 0, 0]]
    # The baseline is what the figures were then, before the correction.
    assert since.baseline == [100, 80, 0, 0] and votes(since) == [[90, 80, 0, 0]]


def test_after_a_wipeout_the_history_starts_again(database):
    with database.Session.begin() as session:
        report(session, "ap", 1, {101: 100, 102: 80}, 0)
        report(session, "ap", 2, {101: 90}, 10)
        wipeout(session)
        report(session, "ap", 3, {102: 40}, 20)
    with database.Session() as session:
        history = race_history(session, 1)
        since = race_history(session, 1, since=START + timedelta(seconds=15))
    # Nothing from before the wipeout: Trump's 90 is gone until AP says it again.
    assert votes(history) == [[0, 40, 0, 0]]
    assert since.baseline == [0, 0, 0, 0] and votes(since) == [[0, 40, 0, 0]]


def test_only_the_primary_source_at_its_top_level(database):
    counties = {"Maricopa": {101: 60, 102: 20}, "Pima": {101: 30, 102: 10}}
    with database.Session.begin() as session:
        # The state reports race 1 first; AP, the catalog's first source, later.
        report(session, "sos", 1, {101: 1000, 102: 2000}, 0, race_id=1)
        with_state = race_history(session, 1)
        report(session, "ap", 1, {101: 100, 102: 30}, 10, below=counties)
    with database.Session() as session:
        history = race_history(session, 1)
    assert with_state.source == "sos" and votes(with_state) == [[1000, 2000, 0, 0]]
    # AP's state figures, not its counties added on top, nor the state's figures.
    assert history.source == "ap" and votes(history) == [[100, 30, 0, 0]]
    assert history.to_json()["source"] == "ap"


def test_since_keeps_what_came_before_as_the_baseline(database):
    with database.Session.begin() as session:
        report(session, "mc", 1, {201: 100}, 0)
        report(session, "mc", 2, {202: 40}, 5)
        report(session, "mc", 3, {201: 101}, 60)
    with database.Session() as session:
        history = race_history(session, 2, since=START + timedelta(seconds=5))
        later = race_history(session, 2, since=START + timedelta(hours=1))
    assert history.baseline == [100, 40]
    assert votes(history) == [[101, 40]]
    assert later.baseline == [101, 40] and later.points == []
    # A since with another offset is the same moment in UTC.
    assert history.to_json()["since"] == "2016-11-08T20:00:05+00:00"


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
def test_a_long_night_is_cut_into_at_most_max_points(database):
    with database.Session.begin() as session:
        for n in range(600):
            report(session, "sos", n + 1, {301: 10 * (n // 2 + 1)} if n % 2 == 0
                   else {302: 10 * (n // 2 + 1)}, n * 37.0, race_id=3)
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
