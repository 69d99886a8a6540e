"""`rome chaos`'s own logic: its seeded schedule, the pauses it reports, and its comparison."""

from collections import Counter

from rome.ops.chaos import KINDS, Fault, Summary, fault_plan, pauses
from rome.ops.chaos_reference import compare_states
from rome.store import db
from rome.store.tally import record_snapshots
from tests.helpers.builders import race_snapshot


def test_the_schedule_is_seeded_spaced_and_takes_every_kind_once_a_round():
    plan = fault_plan("ci", 600)
    assert plan == fault_plan("ci", 600)
    assert plan != fault_plan("other", 600)
    gaps = [b[0] - a[0] for a, b in zip([(0.0, "")] + plan, plan, strict=False)]
    assert all(10 <= gap <= 30 for gap in gaps)
    assert plan[-1][0] < 600
    rounds = [plan[i:i + len(KINDS)] for i in range(0, len(plan), len(KINDS))]
    for full in (r for r in rounds if len(r) == len(KINDS)):
        assert Counter(kind for _, kind in full) == Counter(KINDS)
    assert len(plan) >= 2 * len(KINDS)  # ten minutes take every kind at least twice


def test_a_faults_pause_is_its_longest_gap_without_a_commit():
    faults = [Fault("pg_kill", 10, ""), Fault("beat_kill", 30, "")]
    started = 1000.0
    commits = [1005, 1011, 1012, 1019, 1020, 1031, 1032, 1045]
    pauses(faults, commits, started, ended=1050)
    assert faults[0].pause == 7  # 1012 -> 1019
    assert faults[1].pause == 13  # 1032 -> 1045
    silent = [Fault("rabbit_stop", 10, "")]
    pauses(silent, [1005], started, ended=1040)
    assert silent[0].pause == 30  # nothing committed from the fault to the end


def _database(tmp_path, name, *snapshots):
    url = f"sqlite:///{tmp_path / name}"
    database = db.prepare(url)
    with database.Session.begin() as session:
        record_snapshots(session, list(snapshots))
    database.engine.dispose()
    return url


def test_the_comparison_finds_counts_lost_and_doubled(tmp_path):
    same = _database(tmp_path, "a.sqlite3", race_snapshot("ap", 5, {101: 500, 102: 400}))
    reference = _database(tmp_path, "b.sqlite3", race_snapshot("ap", 5, {101: 500, 102: 400}))
    summary = Summary(1, "s", fetched=1)
    compare_states(same, reference, summary)
    assert (summary.lost, summary.doubled, summary.differing_keys) == (0, 0, [])
    assert summary.counts > 0 and summary.ok

    off = _database(tmp_path, "c.sqlite3", race_snapshot("ap", 5, {101: 530, 102: 390}))
    summary = Summary(1, "s", fetched=1)
    compare_states(off, reference, summary)
    assert (summary.lost, summary.doubled) == (10, 30)
    assert len(summary.differing_keys) == 2 and not summary.ok


def test_a_dead_letter_without_its_rejected_row_fails_the_run():
    summary = Summary(1, "s", counts=5, dead_letters=2, rejected=1, fetched=3)
    assert not summary.ok
    summary.rejected = 2
    assert summary.ok
    # A dead-lettered poll carries no data (the next poll asks again): no row is owed for it.
    summary = Summary(1, "s", counts=5, dead_letters=3, rejected=2, fetched=3, polls_dead=1)
    assert summary.ok
    summary.polls_dead = 0
    assert not summary.ok


def test_a_run_that_fetched_nothing_proves_nothing():
    assert not Summary(1, "s", counts=5).ok


def test_the_reference_replays_every_journalled_fetch_in_fetch_order(tmp_path):
    """What the polls fetched, read back from the archive's journal alone, gives the state
    applying the same snapshots gives; an unreadable body is left out, as the run rejects it."""
    from rome.feeds.formats import parse_feed, render_feed
    from rome.feeds.simulator import Night, simulate
    from rome.ops.chaos_reference import rebuild_reference
    from rome.store.archive import Archive, record_fetch

    store = Archive(tmp_path / "archive")
    night = Night("journal", 0.5, 1.0, 1_700_000_000.0)
    bodies = [render_feed("ap", simulate("ap", tick, night, full=True))
              for tick in (1_700_000_010, 1_700_000_020)]
    first, later = (parse_feed("ap", b, source="ap", max_ahead=None) for b in bodies)
    index = db.prepare(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    with index.Session.begin() as session:
        for at, body in ((100.0, bodies[0]), (101.0, b"not a feed"), (102.0, bodies[1])):
            record_fetch(session, store, source="ap", fmt="ap", url="http://f/ap", status=200,
                         body=body, fetched_at=1_700_000_000 + at, kind="feed")
    index.engine.dispose()
    reference = f"sqlite:///{tmp_path / 'ref.sqlite3'}"
    db.prepare(reference).engine.dispose()
    assert rebuild_reference(store.root, reference) == 2
    want = _database(tmp_path, "want.sqlite3", first, later)
    summary = Summary(1, "s", fetched=2)
    compare_states(reference, want, summary)
    assert (summary.lost, summary.doubled, summary.differing_keys) == (0, 0, [])
    assert summary.counts > 0
