"""Read results back: what the rejected-payload listing costs."""

from __future__ import annotations

import tracemalloc

from rome.read.results import recent_rejected
from rome.store.tally import reject_payload

MB = 1_000_000


def test_listing_rejected_payloads_reads_only_what_it_shows(database):
    # Twenty stored payloads of 1 MB each: the listing shows 500 characters of
    # each, so it must not bring the rest out of the database.
    with database.Session.begin() as session:
        for i in range(20):
            reject_payload(session, "ap", f"{i:03d}" + "x" * MB, "payload is over 1000000")
    with database.Session() as session:
        tracemalloc.start()
        try:
            rows = recent_rejected(session, limit=20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(rows) == 20
    assert rows[0]["payload"] == "019" + "x" * 497
    assert all(len(row["payload"]) == 500 for row in rows)
    assert peak < 2 * MB, f"listing 20 rows allocated {peak / MB:.1f} MB"
