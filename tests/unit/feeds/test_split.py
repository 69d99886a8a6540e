"""A big snapshot cut into parts of whole races, each small enough for one broker message."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

from rome.feeds.formats import MAX_PAYLOAD_BYTES, parse_feed, render_feed
from rome.feeds.national import changed, national
from rome.feeds.snapshot import InvalidPayload
from rome.feeds.split import MAX_PART_BYTES, pack, split
from rome.settings import SettingsError, load_settings


def wire_size(snapshot) -> int:
    return len(json.dumps(snapshot.to_wire(), ensure_ascii=False))


@pytest.fixture(scope="module")
def answer():
    return national(races_per_state=2)


def test_parts_are_bounded_whole_and_valid(answer):
    parts = split(answer, max_bytes=100_000)
    assert len(parts) > 5
    assert max(wire_size(p) for p in parts) <= 100_000
    for part in parts:
        part.validate(max_ahead=None)  # every unit a count names, and its parents, ride along
        assert (part.source, part.version, part.feed_at) == (
            answer.source, answer.version, answer.feed_at)
    counts = [n for p in parts for n in p.counts]
    assert sorted(counts, key=repr) == sorted(answer.counts, key=repr)
    assert {u.key for p in parts for u in p.units} == {u.key for u in answer.units}
    assert sorted((s for p in parts for s in p.statuses), key=repr) == sorted(
        answer.statuses, key=repr)
    # Whole races: each race's counts sit in one part.
    homes = {}
    for i, part in enumerate(parts):
        for n in part.counts:
            assert homes.setdefault(n.race, i) == i


def test_a_claim_checks_county_files_go_to_caesar_together_under_the_bound():
    from dataclasses import replace

    from rome.feeds.national import clarity_state
    from rome.feeds.poll.clarity import scoped

    counties = [scoped(replace(s, source="ga"), f"County_{i:03d}")
                for i, s in enumerate(clarity_state(16, 400))]
    sizes = [wire_size(s) for s in counties]
    bound = 3 * max(sizes)
    batches = pack(counties, max_bytes=bound)
    # Fewer messages than files, each under the bound as its list of wire forms, and
    # every county's snapshot whole, once, in order.
    assert 1 < len(batches) < len(counties)
    for batch in batches:
        assert len(json.dumps([p.to_wire() for p in batch], ensure_ascii=False)) <= bound
    assert [p for batch in batches for p in batch] == counties
    # A county too big for the bound is cut as split cuts it, its parts packed on.
    small = pack(counties, max_bytes=min(sizes) // 2)
    assert sum(len(b) for b in small) > len(counties)
    assert sorted((n for b in small for p in b for n in p.counts), key=repr) == sorted(
        (n for c in counties for n in c.counts), key=repr)
    # One snapshot: its parts, a message each, as before.
    assert pack([counties[0]], max_bytes=bound) == [[counties[0]]]


def test_a_counts_size_is_its_json_however_its_keys_are_spelled():
    from rome.feeds.snapshot import Count
    from rome.feeds.split import _CountSizer, _size

    sizer = _CountSizer()
    for race, unit, candidate, votes in [("r1", "u1", "c1", 0), ('r"q', "u\\n", "é中", 10**12),
                                         ("\x00\x1f", "\u2028", "c", 7), ("r1", "u1", "c1", 5)]:
        n = Count(race, unit, candidate, votes, "early")
        assert sizer(n) == _size([n.race, n.unit, n.candidate, n.vote_type, n.votes])


def test_a_small_snapshot_stays_whole(answer):
    assert split(answer, max_bytes=wire_size(answer)) == [answer]
    assert len(split(answer, max_bytes=wire_size(answer) - 1)) == 2


def test_a_race_bigger_than_a_part_is_cut_by_units():
    one = national(races_per_state=1)
    big = max(one.races, key=lambda r: sum(n.race == r.key for n in one.counts))
    parts = split(one, max_bytes=5_000)
    holding = [p for p in parts if any(n.race == big.key for n in p.counts)]
    assert len(holding) > 1
    assert max(wire_size(p) for p in parts) <= 5_000
    for part in holding:
        part.validate(max_ahead=None)
    assert sorted((n for p in holding for n in p.counts if n.race == big.key), key=repr) == sorted(
        (n for n in one.counts if n.race == big.key), key=repr)


def test_a_national_answer_is_taken_and_cut_under_a_megabyte():
    snapshot = national()
    body = render_feed("ap", snapshot)
    assert len(body) > 14_000_000 and len(snapshot.counts) > 100_000  # refused before issue 20
    parsed = parse_feed("ap", body, source="ap", max_ahead=None)
    assert len(parsed.counts) == len(snapshot.counts)
    parts = split(parsed)
    assert max(wire_size(p) for p in parts) <= MAX_PART_BYTES < 1_000_000
    assert sum(len(p.counts) for p in parts) == len(snapshot.counts)


def test_a_feed_over_the_limit_is_refused_with_the_reason(answer):
    body = render_feed("ap", answer)
    assert parse_feed("ap", body, source="ap", max_ahead=None, max_bytes=len(body)).counts
    with pytest.raises(InvalidPayload, match=r"payload is [\d,]+ bytes, over the [\d,]+ allowed "
                                             r"\(ROME_MAX_FEED_BYTES\)"):
        parse_feed("ap", body, source="ap", max_ahead=None, max_bytes=len(body) - 1)
    assert MAX_PAYLOAD_BYTES == 256_000_000


def test_the_limit_is_a_setting():
    assert load_settings({}).max_feed_bytes == 256_000_000
    assert load_settings({"ROME_MAX_FEED_BYTES": "5000000"}).max_feed_bytes == 5_000_000
    with pytest.raises(SettingsError, match="ROME_MAX_FEED_BYTES"):
        load_settings({"ROME_MAX_FEED_BYTES": "lots"})


def test_a_changed_version_moves_the_share_asked(answer):
    after = changed(answer, 0.01, seed=random.randrange(1000))
    moved = sum(a != b for a, b in zip(answer.counts, after.counts, strict=True))
    assert moved == round(len(answer.counts) * 0.01)
    assert after.version > answer.version
    # Each state's row still sums its counties' (a real feed's levels agree).
    state = {u.key for u in answer.units if u.parent is None}
    sums: dict[tuple, int] = defaultdict(int)
    for n in after.counts:
        if n.unit not in state:
            sums[(n.race, n.candidate, n.vote_type)] += n.votes
    assert {(n.race, n.candidate, n.vote_type): n.votes
            for n in after.counts if n.unit in state} == dict(sums)
