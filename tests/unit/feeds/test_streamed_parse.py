"""notekeeper reads an archived AP answer race by race, never its body or JSON whole (issue 20)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from rome.feeds.formats import parse_feed, parse_feed_chunks, render_feed
from rome.feeds.formats._common import CHUNK_BYTES, byte_chunks
from rome.feeds.national import national
from rome.feeds.snapshot import InvalidPayload
from rome.feeds.split import split
from rome.store.archive import Archive, record_fetch, snapshot_of
from tests.helpers.format_cases import canonical, fixture

MB = 1 << 20


@pytest.fixture(scope="module")
def answer():
    snapshot = national(races_per_state=2)  # 20,154 counts, a 2.6 MB answer
    return snapshot, render_feed("ap", snapshot)


def archived(database, tmp_path, body: bytes) -> tuple[Archive, int]:
    archive = Archive(tmp_path / "archive")
    with database.Session.begin() as session:
        row = record_fetch(session, archive, source="ap", fmt="ap", url="https://ap.test/v2",
                           status=200, body=body, fetched_at=time.time(), kind="feed")
    return archive, row


def test_a_claim_check_costs_its_snapshot_not_its_body_and_json(poll_db, tmp_path, answer):
    snapshot, body = answer
    archive, row = archived(poll_db, tmp_path, body)
    with poll_db.Session() as session:
        tracemalloc.start()
        try:
            parsed = snapshot_of(session, archive, row, "ap", max_ahead=None)
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert canonical(parsed) == canonical(snapshot.validate(max_ahead=None))
    # Beyond the snapshot it returns, the parse's peak is validation's set of count keys
    # (about the snapshot again) and the text read ahead (CHUNK_BYTES at a time). Holding
    # the body and its decoded JSON whole (json.loads) took 12.5 MB more than a 4.3 MB
    # snapshot here, against 3.9 MB more than 3.2 MB now.
    assert peak - held < 1.2 * held + 4 * CHUNK_BYTES, (held / MB, peak / MB)


def test_read_in_pieces_or_whole_an_answer_is_the_same_snapshot_and_the_same_parts(answer):
    snapshot, body = answer
    whole = parse_feed("ap", body, source="ap", max_ahead=None)
    streamed = parse_feed_chunks("ap", byte_chunks(body, 65_536), size=len(body), source="ap",
                                 max_ahead=None)
    assert streamed == whole
    assert canonical(streamed) == canonical(snapshot.validate(max_ahead=None))
    parts = split(streamed, max_bytes=100_000)
    assert parts == split(whole, max_bytes=100_000) and len(parts) > 10
    assert sorted(map(repr, (n for p in parts for n in p.counts))) == sorted(
        map(repr, whole.counts))


def test_an_archived_answer_over_the_limit_is_refused_with_the_reason(poll_db, tmp_path,
                                                                      answer):
    _, body = answer
    archive, row = archived(poll_db, tmp_path, body)
    with poll_db.Session() as session:
        assert snapshot_of(session, archive, row, "ap", max_ahead=None, max_bytes=len(body))
        # Refused unread: the archive's row says how big the body is.
        with pytest.raises(InvalidPayload, match=r"payload is [\d,]+ bytes, over the [\d,]+ "
                                                 r"allowed \(ROME_MAX_FEED_BYTES\)"):
            snapshot_of(session, archive, row, "ap", max_ahead=None, max_bytes=len(body) - 1)
    # A body longer than its size says is refused once the reading passes the limit.
    with pytest.raises(InvalidPayload, match=r"payload is over 1,000,000 bytes, more than "
                                             r"allowed \(ROME_MAX_FEED_BYTES\)"):
        parse_feed_chunks("ap", byte_chunks(body, 65_536), size=10, source="ap",
                          max_ahead=None, max_bytes=1_000_000)


def test_a_format_read_whole_takes_its_pieces_joined():
    body = fixture("clarity", "ga_bacon_precincts_11-3-trim.xml")
    assert parse_feed_chunks("clarity", byte_chunks(body, 1000), size=len(body), source="mc",
                             max_ahead=None) == parse_feed("clarity", body, source="mc",
                                                           max_ahead=None)
