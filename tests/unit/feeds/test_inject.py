"""rome inject's plans: the final state they promise is what applying them in any order gives."""

import random

from rome.feeds.inject import plan_snapshots
from rome.store.audit import audit, tallies_by_key
from rome.store.tally import record_snapshots


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


def test_every_planned_message_parses_back_into_its_snapshot():
    from rome.feeds.formats import parse_feed
    from rome.feeds.inject import to_message

    snapshots, _ = plan_snapshots(120, batch=10, seed="parse")
    for snapshot in snapshots:
        message = to_message(snapshot)
        back = parse_feed(snapshot.format, message.body, source=message.source,
                          version=message.version)
        assert back.version == snapshot.version
        assert set(back.counts) == set(snapshot.counts)


def test_every_kind_of_bad_input_the_injector_mixes_in_is_refused_with_its_own_reason():
    import pytest

    from rome.feeds.formats import parse_feed
    from rome.feeds.inject import BAD_KINDS, plan_stream
    from rome.feeds.snapshot import InvalidPayload
    from workers.tasks import decode_body, feed_format

    messages, expectation = plan_stream(30, batch=10, bad=len(BAD_KINDS), seed="bad")
    bad = [m for m in messages if m.kind != "good"]
    assert sorted(m.kind for m in bad) == sorted(BAD_KINDS)
    assert expectation["rejected"] == len(BAD_KINDS)
    reasons = {}
    for m in bad:
        with pytest.raises(InvalidPayload) as refused:
            parse_feed(feed_format(m.source, m.format), decode_body(m.body, m.encoding),
                       source=m.source, version=m.version)
        reasons[m.kind] = str(refused.value)
    assert len(set(reasons.values())) == len(BAD_KINDS), reasons
