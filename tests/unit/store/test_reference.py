"""Feed keys to Rome's ids: stored on first sight, then found in one statement."""

from dataclasses import replace

import pytest
from sqlalchemy import event, select

from rome.feeds.catalog import default_catalog
from rome.feeds.national import national
from rome.feeds.split import split
from rome.store.models import RaceRow
from rome.store.reference import resolve, resolve_all


def statements(database, snapshot, resolver=resolve):
    """Resolve snapshot (or a batch, with resolve_all) in a transaction of its own: (its
    ids, the statements it ran)."""
    sent: list[str] = []

    def spy(conn, cursor, statement, *args):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", spy)
    try:
        with database.Session.begin() as session:
            ids = resolver(session, snapshot, default_catalog())
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


def test_a_batch_of_known_snapshots_takes_one_statement_and_a_new_one_is_stored(
        database, empty_tables):
    """resolve_all maps a batch as resolve maps each snapshot; on PostgreSQL the known ones
    all in one statement, and one with a new key is stored without the others' ids moving."""
    parts = split(national(races_per_state=1), max_bytes=200_000)
    assert len(parts) > 2
    alone = [statements(database, part)[0] for part in parts]  # each stored, then known
    batch, sent = statements(database, parts, resolve_all)
    assert batch == alone
    if database.dialect == "postgresql":
        assert len(sent) == 1
    race = parts[1].races[0]
    new = replace(parts[1], races=(*parts[1].races, replace(race, key=race.key + "-new")),
                  counts=(), statuses=())
    mixed, sent = statements(database, [parts[0], new, parts[2]], resolve_all)
    assert mixed[0] == alone[0] and mixed[2] == alone[2]
    assert mixed[1].races[race.key] == alone[1].races[race.key]
    assert race.key + "-new" in mixed[1].races and len(sent) > 1
