"""rome inject's plans: the final state they promise is what applying them in any order gives."""

import random

from rome.audit import audit, tallies_by_key
from rome.inject import plan_snapshots
from rome.tally import record_snapshots


def test_the_expected_state_is_what_any_order_of_the_snapshots_gives(database, empty_tables):
    snapshots, expected = plan_snapshots(600, batch=20, seed="plan")
    assert sum(len(s.counts) for s in snapshots) > 600  # top rows come on top
    lowered = {(s.source, n.unit, n.candidate) for s in snapshots for n in s.counts}
    assert len(lowered) < sum(len(s.counts) for s in snapshots)  # keys are revisited
    for seed in (1, 2):
        empty_tables(database)
        shuffled = snapshots * 2
        random.Random(seed).shuffle(shuffled)
        for start in range(0, len(shuffled), 7):
            with database.Session.begin() as session:
                record_snapshots(session, shuffled[start:start + 7])
        with database.Session() as session:
            assert tallies_by_key(session) == expected
        with database.Session() as session:
            assert audit(session) == []


def test_plans_hold_corrections_and_consistent_levels():
    snapshots, expected = plan_snapshots(3000, batch=50, seed="levels")
    last: dict = {}
    falls = 0
    for s in snapshots:
        for n in s.counts:
            key = (s.source, n.unit, n.candidate)
            falls += n.votes < last.get(key, 0)
            last[key] = n.votes
    assert falls > 0
    by_level: dict = {}
    for (race, source, candidate, vote_type, rank), votes in expected.items():
        by_level.setdefault((race, source, candidate, vote_type), {})[rank] = votes
    # The newest top row of each source is the sum of the newest unit figures.
    assert all(len(set(ranks.values())) == 1 for ranks in by_level.values())
