"""Migrations, the catalog seed, and the demo's night clock."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from rome.store import db
from rome.store.models import RaceRow, SourceRow, TallyRow
from rome.store.tally import record_snapshots
from tests.helpers.builders import race_snapshot


def test_the_catalog_is_seeded_once_and_a_feeds_own_race_gets_an_id_of_its_own(database):
    with database.Session.begin() as session:
        assert db.seed_catalog(session) == 0  # prepare() seeded it already
        record_snapshots(session, [race_snapshot("ap", 1, {101: 1})])
    from rome.feeds.snapshot import CandidateRef, Count, RaceRef, Snapshot, UnitRef

    new = Snapshot("ap", "ap", 1, 1.0, (RaceRef("NY-7", "Mayor"),), (UnitRef("NY", "NY", "state"),),
                   (CandidateRef("NY-7", "9", "A", "B", "DEM"),), (Count("NY-7", "NY", "9", 5),))
    with database.Session.begin() as session:
        record_snapshots(session, [new])
    with database.Session() as session:
        ids = dict(session.execute(select(RaceRow.key, RaceRow.id)).all())
    assert ids["catalog:1"] == 1
    assert ids["ap:NY-7"] >= (1000 if database.dialect == "postgresql" else 4)


def test_a_demo_night_that_is_over_starts_again_from_nothing(database):
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 1, {101: 1})])
        started = session.scalars(select(SourceRow)).first().started_at
    now = datetime.now(UTC)
    with database.Session.begin() as session:
        assert not db.begin_night_if_over(session, 3600, now)
    later = now + timedelta(hours=2)
    with database.Session.begin() as session:
        assert db.begin_night_if_over(session, 3600, later)
    with database.Session() as session:
        assert session.scalars(select(TallyRow)).all() == []
        restarted = session.scalars(select(SourceRow)).first().started_at
    assert restarted.replace(tzinfo=UTC) > started.replace(tzinfo=UTC)
