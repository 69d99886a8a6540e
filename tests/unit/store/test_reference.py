"""Feed keys to Rome's ids: stored on first sight, then found in one statement."""

from dataclasses import replace

import pytest
from sqlalchemy import event, select

from rome.feeds.catalog import default_catalog
from rome.feeds.national import national
from rome.store.models import RaceRow
from rome.store.reference import resolve


def statements(database, snapshot):
    """Resolve snapshot in a transaction of its own: (its ids, the statements it ran)."""
    sent: list[str] = []

    def spy(conn, cursor, statement, *args):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", spy)
    try:
        with database.Session.begin() as session:
            ids = resolve(session, snapshot, default_catalog())
    finally:
        event.remove(database.engine, "before_cursor_execute", spy)
    return ids, sent


def test_known_keys_take_one_statement_and_map_as_the_first_sight_did(database, empty_tables):
    if database.dialect != "postgresql":
        pytest.skip("the one-statement lookup is PostgreSQL's")
    snapshot = national(races_per_state=1)
    first, stored = statements(database, snapshot)
    again, looked_up = statements(database, snapshot)
    assert again == first and len(looked_up) == 1 < len(stored)
    # Anything new takes the storing path, which maps the known keys the same.
    race = snapshot.races[0]
    more = replace(snapshot, races=(*snapshot.races, replace(race, key=race.key + "-new")),
                   counts=(), statuses=())
    mixed, storing = statements(database, more)
    assert len(storing) > 1 and mixed.races[race.key] == first.races[race.key]
    # And so does a race whose election date was never given, once a snapshot gives one.
    with database.Session.begin() as session:
        session.execute(RaceRow.__table__.update().where(
            RaceRow.id == first.races[race.key]).values(election_date=""))
    _, dating = statements(database, replace(snapshot, election_date="2024-11-05"))
    assert len(dating) > 1
    with database.Session() as session:
        assert session.scalar(select(RaceRow.election_date).where(
            RaceRow.id == first.races[race.key])) == "2024-11-05"
