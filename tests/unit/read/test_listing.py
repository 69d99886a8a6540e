"""Races at national size: pages by state, office and id, the national index, a state's races."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from rome.read.listing import (
    RaceGroup,
    national_index,
    page_views,
    percent_reporting,
    race_groups,
    race_percent_reporting,
    races_page,
    search_index,
    state_races,
)
from rome.read.results import heard_by_source, race_views
from rome.store import db
from rome.store.tally import record_snapshots
from tests.conftest import clear
from tests.helpers.builders import OFFICES, STATES, national_snapshot, race_snapshot
from tests.helpers.template_db import prepared_copy

NOW = datetime.now(UTC)
RACES = 260  # over 50 states and 5 offices: every state has 5 or 6 races, one per office and more


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def night_database(request, tmp_path_factory):
    """conftest's `database`, with the night recorded once per module and dialect: every
    test here only reads it, and recording 260 races is what costs."""
    if request.param == "sqlite":
        database = db.prepare(prepared_copy(tmp_path_factory.mktemp("night") / "rome.sqlite3"))
    else:
        database = request.getfixturevalue("_pg_database")
        clear(database)
    with database.Session.begin() as session:
        record_snapshots(session, [
            national_snapshot(RACES, counties=2, feed_at=NOW.timestamp()),
            race_snapshot("ap", 1, {101: 5, 102: 7}, feed_at=NOW.timestamp()),
        ])
    yield database
    if request.param == "sqlite":
        database.engine.dispose()


@pytest.fixture
def night(night_database):
    # A session of its own per test, closed (rolled back) after it: the tests only read.
    with night_database.Session() as session:
        yield session


def every_view(session) -> list:
    return race_views(session, NOW, 60.0)


FILTERS = [
    {},
    {"states": ["GA"]},
    {"states": ["GA", "AZ"]},
    {"offices": ["Governor"]},
    {"states": ["TX"], "offices": ["U.S. House", "State House"]},
    {"race_ids": [1, 5, 7]},
    {"states": ["GA"], "race_ids": [1, 2]},
    {"states": ["ZZ"]},
]
PAGES = [(None, 0), (3, 0), (3, 4), (500, 0), (2, 10_000)]


def test_a_page_lists_the_races_race_views_shows_that_match_in_id_order(night):
    # One night for every case: recording it is what costs.
    everything = every_view(night)
    for filters in FILTERS:
        matching = [
            view.to_json() for view in everything
            if view.state in filters.get("states", [view.state])
            and view.office in filters.get("offices", [view.office])
            and view.id in filters.get("race_ids", [view.id])
        ]
        for limit, offset in PAGES:
            page = races_page(night, **filters, limit=limit, offset=offset, now=NOW,
                              stale_after=60.0)
            end = None if limit is None else offset + limit
            assert page["races"] == matching[offset:end], (filters, limit, offset)
            assert (page["total"], page["limit"], page["offset"]) == (
                len(matching), limit, offset)


def test_walking_the_next_links_lists_every_match_once(night):
    pages, offset = [], 0
    while offset is not None:
        page = races_page(night, offices=["State Senate"], limit=7, offset=offset,
                          link=lambda at: at)
        pages.append(page)
        offset = page["next"]
    listed = [race["id"] for page in pages for race in page["races"]]
    assert listed == sorted(set(listed)) and len(listed) == pages[0]["total"] == 50
    assert [p["previous"] for p in pages[:3]] == [None, 0, 7]
    assert pages[-1]["next"] is None


def test_a_page_past_the_end_is_empty_and_links_back_to_the_last(night):
    page = races_page(night, states=["GA"], limit=2, offset=50, link=lambda at: at)
    assert page["races"] == [] and page["next"] is None
    assert page["previous"] == page["total"] - 2


def test_a_page_reads_the_rows_of_its_races_alone(night):
    # The point of the listing: a page of 2 from hundreds of races never reads them all.
    heard = heard_by_source(night)
    statements = []
    connection = night.connection()
    event.listen(connection, "before_cursor_execute",
                 lambda *args: statements.append(" ".join(args[2].split())))
    races_page(night, offices=["Governor"], limit=2, heard=heard)
    per_race = [s for s in statements
                if any(f"FROM {t}" in s for t in ("tallies", "current_counts", "race_status"))
                and "count(*)" not in s.lower() and "EXISTS" not in s]
    assert per_race and all("race_id IN (" in s for s in per_race), per_race


def test_a_state_lists_its_races_as_the_api_does(night):
    views = [v for v in every_view(night) if v.state == "GA"]
    state = state_races(night, "GA", NOW, 60.0)
    assert state["races"] == [v.to_json() for v in views]
    assert state["offices"] == sorted({v.office for v in views}) == sorted(OFFICES)
    assert state_races(night, "ZZ") is None


def test_the_index_agrees_with_the_race_pages(night):
    views = {v.id: v for v in every_view(night)}
    index = national_index(night)
    listed = {}
    for state in index["states"]:
        assert state["races"] == sum(len(o["races"]) for o in state["offices"])
        assert state["called"] == sum(r["called"] for o in state["offices"] for r in o["races"])
        for office in state["offices"]:
            for race in office["races"]:
                listed[race["id"]] = (state["state"], office["office"], race)
    assert index["races"] == len(listed) == len(views)
    for race_id, (state, office, race) in listed.items():
        view = views[race_id]
        leader = view.leader
        assert (state, office, race["name"]) == (view.state, view.office, view.name)
        assert race["leader"] == (f"{leader.first} {leader.last}" if leader else None)
        assert race["reporting"] == race_percent_reporting(view)
        assert race["called"] == (view.winner_id is not None)
    # The builder's races: precincts where it gives them, else one county of two with votes.
    assert {r["reporting"] for _, _, r in listed.values()} >= {50.0, 10.0}
    assert any(r["called"] for _, _, r in listed.values())
    states = [s["state"] for s in index["states"]]
    assert states == sorted(states) and set(STATES) <= set(states)


def test_the_groups_count_races_and_calls_per_state_and_office(night):
    groups = race_groups(night)
    index = national_index(night)
    assert groups == sorted(
        RaceGroup(s["state"], o["office"], len(o["races"]), sum(r["called"] for r in o["races"]))
        for s in index["states"] for o in s["offices"]
    )


def test_search_needs_every_word_in_any_case_and_counts_what_it_leaves_out(night):
    index = national_index(night)
    found, total = search_index(index, "ga HOUSE", 100)
    assert total == len(found) > 0
    assert all(state == "GA" and "House" in office for state, office, _ in found)
    assert {office for _, office, _ in found} == {"U.S. House", "State House"}
    some, total_again = search_index(index, "ga house", 1)
    assert len(some) == 1 and total_again == total
    by_leader, _ = search_index(index, "baker", 1000)
    assert len(by_leader) == RACES  # every built race's leader is a Baker
    assert search_index(index, "   ", 10) == ([], 0)


@pytest.mark.parametrize(("precincts", "units", "percent"), [
    ((5, 10), (1, 2), 50.0),  # precincts first
    ((None, None), (1, 2), 50.0),
    ((999, 1000), None, 99.9),  # rounded down: 100 means all
    ((3, 0), (2, 3), 66.6),
    ((None, None), (0, 0), None),
    ((None, None), None, None),
])
def test_percent_reporting(precincts, units, percent):
    assert percent_reporting(precincts, units) == percent


def test_views_of_some_races_match_the_views_of_all(night):
    everything = {v.id: v.to_json() for v in every_view(night)}
    some, total = page_views(night, now=NOW, stale_after=60.0, limit=4, offset=3)
    assert total == len(everything)
    assert [v.to_json() for v in some] == list(everything.values())[3:7]
