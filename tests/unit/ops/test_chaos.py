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
    summary = Summary(1, "s")
    compare_states(same, reference, summary)
    assert (summary.lost, summary.doubled, summary.differing_keys) == (0, 0, [])
    assert summary.counts == 2 and summary.ok

    off = _database(tmp_path, "c.sqlite3", race_snapshot("ap", 5, {101: 530, 102: 390}))
    summary = Summary(1, "s")
    compare_states(off, reference, summary)
    assert (summary.lost, summary.doubled) == (10, 30)
    assert len(summary.differing_keys) == 2 and not summary.ok


def test_a_dead_letter_without_its_rejected_row_fails_the_run():
    summary = Summary(1, "s", counts=5, dead_letters=2, rejected=1)
    assert not summary.ok
    summary.rejected = 2
    assert summary.ok
