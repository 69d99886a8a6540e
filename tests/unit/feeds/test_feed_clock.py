"""A snapshot dated implausibly far ahead of the clock is refused, with a reason (issue 23)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from rome.feeds.formats import parse_feed
from rome.feeds.snapshot import MAX_AHEAD, InvalidPayload, Snapshot
from rome.store.models import RejectedRow
from tests.helpers.builders import race_snapshot
from tests.helpers.format_cases import fixture

NOW = 1_800_000_000.0


def ap_body(timestamp: str) -> str:
    doc = json.loads(fixture("ap", "20121106_ak_prez.json"))
    doc["timestamp"] = timestamp
    return json.dumps(doc)


def dated(feed_at: float) -> Snapshot:
    return replace(race_snapshot("ap", 1, {101: 5}), feed_at=feed_at)


def test_a_feed_time_a_day_and_more_ahead_is_refused_naming_both_times():
    ahead = dated(NOW + MAX_AHEAD + 1)
    with pytest.raises(InvalidPayload, match=r"ahead of this machine's clock .*ROME_MAX_FEED"):
        ahead.validate(now=NOW)
    # Up to the limit, a feed's clock may run ahead of ours (skew, a time zone slip).
    dated(NOW + MAX_AHEAD).validate(now=NOW)
    dated(NOW + 2 * MAX_AHEAD).validate(now=NOW,
                                                                          max_ahead=None)


def test_an_ap_file_dated_2999_is_refused_and_so_is_its_wire_form():
    with pytest.raises(InvalidPayload, match="feed time 2999-01-01 00:00:00 UTC is"):
        parse_feed("ap", ap_body("2999-01-01T00:00:00Z"), source="ap")
    assert parse_feed("ap", ap_body("2999-01-01T00:00:00Z"), source="ap",
                      max_ahead=None).feed_at > time.time()
    # caesar checks again: a batch put on its queue directly is refused too.
    wire = dated(time.time() + 3 * MAX_AHEAD).to_wire()
    with pytest.raises(InvalidPayload, match="ahead of this machine's clock"):
        Snapshot.from_wire(wire)
    assert Snapshot.from_wire(wire, max_ahead=4 * MAX_AHEAD).version == 1


def test_notekeeper_stores_the_future_file_in_rejected_with_the_reason(monkeypatch, database):
    from workers import tasks

    sent = []
    monkeypatch.setattr(tasks, "database", lambda: database)
    monkeypatch.setattr(tasks.record, "apply_async", lambda *a, **k: sent.append(a))
    future = tasks.normalize_feed.apply(args=("ap", ap_body("2999-01-01T00:00:00Z")))
    assert future.get() == 0 and sent == []
    now = tasks.normalize_feed.apply(args=("ap", ap_body("2016-11-09T05:00:00Z")))
    assert now.get() > 0 and len(sent) == 1
    with database.Session() as session:
        rejected = session.scalars(select(RejectedRow)).all()
    assert [r.source_id for r in rejected] == ["ap"]
    assert "feed time 2999-01-01 00:00:00 UTC is" in rejected[0].reason
    assert "2999-01-01T00:00:00Z" in rejected[0].payload
