import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from rome.models import LedgerRow, TallyRow
from rome.results import original_rows, race_views
from rome.tally import audit, record_updates, reject_payload, wipeout
from rome.updates import Update


def totals(database):
    with database.Session() as session:
        return {(t.candidate_id, t.source_id): t.votes for t in session.scalars(select(TallyRow))}


def make(tick, votes, candidate=101, source="ap", unit=0):
    race = candidate // 100
    return Update(source, tick, unit, race, candidate, votes, 1700000000.0 + tick)


def test_each_update_id_counts_once(database):
    batch = [make(1, 100), make(2, 50), make(1, 100)]
    with database.Session.begin() as s:
        result = record_updates(s, batch)
    assert (result.applied, result.duplicates) == (2, 1)
    with database.Session.begin() as s:
        again = record_updates(s, batch)
    assert (again.applied, again.duplicates) == (0, 3)
    assert totals(database) == {(101, "ap"): 150}
    with database.Session() as s:
        assert audit(s) == []


def test_a_rolled_back_batch_leaves_nothing(database):
    try:
        with database.Session.begin() as s:
            record_updates(s, [make(1, 100)])
            raise RuntimeError("worker died before commit")
    except RuntimeError:
        pass
    assert totals(database) == {}
    with database.Session.begin() as s:
        assert record_updates(s, [make(1, 100)]).applied == 1
    assert totals(database) == {(101, "ap"): 100}


def test_audit_finds_a_tampered_tally(database):
    with database.Session.begin() as s:
        record_updates(s, [make(1, 100), make(1, 7, candidate=201, source="mc")])
        s.execute(update(TallyRow).where(TallyRow.candidate_id == 101).values(votes=99))
        s.add(TallyRow(candidate_id=102, source_id="ap", votes=5, updates=1,
                       last_update_at=s.scalar(select(LedgerRow.applied_at).limit(1))))
    with database.Session() as s:
        differences = audit(s)
    assert [(d.candidate_id, d.tally, d.reference) for d in differences] == [
        (101, (99, 1), (100, 1)),
        (102, (5, 1), None),
    ]
    assert str(differences[0]) == (
        "candidate=101 source=ap tally=99votes/1updates ledger=100votes/1updates"
    )


def test_wipeout_empties_tallies_and_ledger(database):
    with database.Session.begin() as s:
        record_updates(s, [make(1, 100), make(2, 3)])
    with database.Session.begin() as s:
        assert wipeout(s) == {"tallies": 1, "ledger": 2}
    assert totals(database) == {}


def test_views_show_shares_leader_and_original_rows(database):
    with database.Session.begin() as s:
        record_updates(s, [make(1, 300), make(2, 100, candidate=102)])
        reject_payload(s, "ap", b"\xff", "payload is not UTF-8")
    with database.Session() as s:
        president = race_views(s)[0]
        rows = original_rows(s)
    assert president.total_votes == 400
    assert president.leader.id == 101
    assert president.candidates[0].share == 0.75
    assert president.sources[0].updates == 2
    assert rows[0] == {"raceID": 1, "raceName": "President of the United States",
                       "first": "Donald", "last": "Trump", "party": "GOP", "candidateID": 101,
                       "voteCount": 300, "source": "ap"}
    assert len(rows) == 8


def replayable(tick, candidate, unit, salt):
    # The same id always carries the same votes: a redelivery is a copy.
    return make(tick, (tick * 7919 + unit * 104729 + candidate * 13 + salt) % 1000, candidate,
                unit=unit)


updates = st.integers(0, 999).flatmap(lambda salt: st.lists(
    st.builds(
        replayable,
        tick=st.integers(0, 30),
        candidate=st.sampled_from([101, 102, 103, 104]),
        unit=st.integers(0, 2),
        salt=st.just(salt),
    ),
    max_size=40,
))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), batch=updates)
def test_any_order_any_duplication_same_totals(database, empty_tables, data, batch):
    """Property: shuffling, duplicating and splitting a stream never changes the totals."""
    expected: dict = {}
    for u in {u.id: u for u in reversed(batch)}.values():
        key = (u.candidate_id, u.source)
        expected[key] = expected.get(key, 0) + u.votes
    stream = batch + data.draw(st.lists(st.sampled_from(batch), max_size=20)) if batch else []
    stream = data.draw(st.permutations(stream))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    empty_tables(database)
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        with database.Session.begin() as s:
            record_updates(s, stream[start:end])
    assert totals(database) == {k: v for k, v in expected.items()}
    with database.Session() as s:
        assert audit(s) == []


def test_rejected_payload_keeps_bytes_and_nul_readable(database):
    with database.Session.begin() as s:
        row = reject_payload(s, "ap\x00", b"\x80\x04pickle\x00\xff", "bad\x00reason")
    with database.Session() as s:
        stored = s.get(type(row), row.id)
    assert stored.payload == "\\x80\x04pickle\\x00\\xff"
    assert stored.source_id == "ap" and stored.reason == "bad\\x00reason"


def test_concurrent_overlapping_batches_neither_deadlock_nor_double(database):
    """Batches sharing updates, applied at once in opposite orders, count each once."""
    import random
    import threading

    batch = [make(t, t % 1000, candidate=101 + t % 4, unit=u) for t in range(200)
             for u in range(3)]
    errors: list[Exception] = []

    def apply(seed):
        shuffled = batch[:]
        random.Random(seed).shuffle(shuffled)
        for start in range(0, len(shuffled), 150):
            try:
                with database.Session.begin() as s:
                    record_updates(s, shuffled[start:start + 300])
            except Exception as exc:  # a deadlock or a lock timeout would land here
                errors.append(exc)

    threads = [threading.Thread(target=apply, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected: dict = {}
    for u in batch:
        expected[(u.candidate_id, u.source)] = expected.get((u.candidate_id, u.source), 0) + u.votes
    assert totals(database) == expected


def test_a_batch_rolled_back_on_a_new_connection_does_not_break_the_next(pg_url, empty_tables):
    """The staging table dies with a rolled-back transaction; the next batch must not care."""
    from rome import db

    fresh = db.connect(pg_url)  # a new pool: its first connection has no staging table yet
    try:
        empty_tables(fresh)
        try:
            with fresh.Session.begin() as s:
                record_updates(s, [make(1, 100)])
                raise RuntimeError("worker died before commit")
        except RuntimeError:
            pass
        with fresh.Session.begin() as s:
            assert record_updates(s, [make(1, 100)]).applied == 1
        assert totals(fresh) == {(101, "ap"): 100}
    finally:
        fresh.engine.dispose()


def test_a_lost_server_during_copy_is_an_sqlalchemy_error(database):
    """Raw-cursor errors are wrapped, so the task's outage handling sees them."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if database.dialect != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    with database.Session() as s:
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
        with database.engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killer.commit()
        with pytest.raises((OperationalError, InterfaceError)):
            record_updates(s, [make(1, 100)])
