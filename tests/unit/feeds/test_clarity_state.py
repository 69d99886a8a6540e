"""The Clarity state of `rome bench national`: county precinct files Rome's parser reads back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rome.feeds.formats import parse_feed, render_feed
from rome.feeds.national import (
    CLARITY_CONTESTS,
    clarity_changed,
    clarity_county_name,
    clarity_state,
)
from rome.feeds.snapshot import TOTAL
from rome.store.archive import parse_fetch


@pytest.fixture(scope="module")
def files():
    return clarity_state(counties=8, precincts=130)


def key(n):
    return n.race, n.unit, n.candidate, n.vote_type


def test_each_county_file_is_rendered_and_read_back(files):
    assert len(files) == 8 and sum(len(f.units) - 1 for f in files) == 130
    assert len({f.units[0].key for f in files}) == 8
    for f in files:
        back = parse_feed("clarity", render_feed("clarity", f), source="clarity",
                          version=f.version)
        assert set(back.counts) == set(f.counts) and back.statuses == f.statuses
        assert len(back.races) == len(CLARITY_CONTESTS)


def test_a_county_file_is_read_as_the_poller_hands_it_over(files):
    fetch = SimpleNamespace(format="clarity", kind="zip", version="270001",
                            scope=clarity_county_name(0))
    snapshot = parse_fetch(fetch, render_feed("clarity", files[0]), "ga")
    assert snapshot.version == 270_001
    assert all(r.key.startswith("county_001/") for r in snapshot.races)


def test_a_changed_state_moves_the_share_asked_and_keeps_the_sums(files):
    after = clarity_changed(files, 0.01, seed=3)
    moved = sum(a != b for f, g in zip(files, after, strict=True)
                for a, b in zip(f.counts, g.counts, strict=True))
    total = sum(len(f.counts) for f in files)
    assert round(total * 0.01) <= moved < round(total * 0.01) + 4
    for f, g in zip(files, after, strict=True):
        # A county's version moves with its figures; its sums still hold (render checks them).
        assert (g.version > f.version) == (g.counts != f.counts)
        render_feed("clarity", g)
        top = {key(n): n.votes for n in g.counts if n.unit == g.units[0].key}
        for (race, _, candidate, vote_type), votes in top.items():
            assert votes == sum(n.votes for n in g.counts if n.unit != g.units[0].key
                                and (n.race, n.candidate, n.vote_type) == (race, candidate,
                                                                           vote_type))
            assert vote_type != TOTAL or votes == sum(
                v for (r, _, c, t), v in top.items() if (r, c) == (race, candidate) and t != TOTAL)


def test_the_identical_version_republishes_every_county(files):
    after = clarity_changed(files, 0.0, seed=0, every=True)
    assert [g.counts for g in after] == [f.counts for f in files]
    assert {g.version for g in after} == {max(f.version for f in files) + 1}
