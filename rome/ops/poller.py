"""Run one poll cycle of a live source: lease, protocol, archive, state; and apply it in process.

The worker's poll task (workers/tasks.py) and `rome poll ID` both call
``run_cycle``: take the source's lease (or skip: a poll still running is never
queued behind), load its state, run its provider's protocol
(rome/feeds/poll/) with one httpx client, archive every body fetched, store
the state the next poll needs, and return the claim checks to send on.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from rome.feeds.poll import Item, Outcome, protocol
from rome.feeds.poll.http import Answer, Fetcher
from rome.feeds.snapshot import MAX_AHEAD, InvalidPayload
from rome.feeds.sources_file import SourceSpec
from rome.logs import log
from rome.store import polls
from rome.store.archive import Archive, record_fetch, snapshot_of
from rome.store.db import Database
from rome.store.tally import RecordResult, record_snapshots, reject_payload

logger = logging.getLogger("rome.poll")
LEASE_MARGIN = 10.0  # seconds a lease outlives its poll's deadline


def deadline_of(spec: SourceSpec) -> float:
    """Seconds one poll of spec may take in all: at least 10, at most 120, twice its interval."""
    return min(120.0, max(10.0, 2 * spec.interval))


@dataclass(frozen=True)
class Cycle:
    skipped: bool
    outcome: Outcome | None = None


def run_cycle(database: Database, archive: Archive, spec: SourceSpec, *,
              env: Mapping[str, str] | None = None,
              transport: httpx.BaseTransport | None = None,
              clock: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep,
              deadline: float | None = None, owner: str | None = None,
              send: Callable[[list[Item]], object] | None = None) -> Cycle:
    """Poll spec once, unless a poll of it is still running; return what to send on.

    send gets the cycle's claim checks before its state is stored: a poll killed
    in between asks the same again next time and sends a duplicate, which its
    version makes harmless, rather than storing a state whose answers were lost.
    """
    deadline = deadline_of(spec) if deadline is None else deadline
    owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    started = datetime.fromtimestamp(clock(), UTC)
    with database.Session.begin() as session:
        if not polls.take_lease(session, spec.id, owner, started, deadline + LEASE_MARGIN):
            polls.count_skip(session, spec.id)
            log(logger, "poll_skipped", logging.WARNING, source=spec.id,
                reason="the last poll still holds the lease")
            return Cycle(skipped=True)
    try:
        with database.Session() as session:
            state = polls.load_state(session, spec.id)

        def keep(answer: Answer, *, kind: str, version: str | None, scope: str | None) -> int:
            with database.Session.begin() as session:
                return record_fetch(session, archive, source=spec.id, fmt=spec.format,
                                    url=answer.url, status=answer.status, body=answer.body,
                                    fetched_at=answer.fetched_at, kind=kind, version=version,
                                    scope=scope)

        with Fetcher(spec, deadline=deadline, stamps=state.recent, env=env, transport=transport,
                     clock=clock, sleep=sleep) as fetcher:
            outcome = protocol(spec.format)(fetcher, spec, state, keep)
            outcome.limited = fetcher.limited
            state.recent = fetcher.limiter.trim(clock())
        if send is not None and outcome.items:
            send(outcome.items)
        ended = datetime.fromtimestamp(clock(), UTC)
        with database.Session.begin() as session:
            polls.save_state(session, spec.id, state, outcome, polled_at=ended,
                             next_poll_at=started + timedelta(seconds=spec.interval))
    finally:
        with database.Session.begin() as session:
            polls.release_lease(session, spec.id, owner)
    log(logger, "polled", logging.WARNING if outcome.error else logging.INFO, source=spec.id,
        status=outcome.status, requests=outcome.requests, items=len(outcome.items),
        error=outcome.error)
    return Cycle(skipped=False, outcome=outcome)


def spec_of(specs: list[SourceSpec], source: str) -> SourceSpec:
    """The source called source in ROME_SOURCES; KeyError naming the known ones otherwise."""
    for spec in specs:
        if spec.id == source:
            return spec
    raise KeyError(f"no source {source!r} in ROME_SOURCES (it has: "
                   f"{', '.join(s.id for s in specs) or 'none'})")


def apply_items(database: Database, archive: Archive, source: str, items: list[Item], *,
                max_ahead: float | None = MAX_AHEAD) -> RecordResult | None:
    """Record the claim checks of a cycle directly (no broker): `rome poll`, and tests."""
    if not items:
        return None
    with database.Session.begin() as session:
        snapshots = []
        for item in items:
            try:
                snapshots.append(snapshot_of(session, archive, item.archive_id, source,
                                             max_ahead=max_ahead))
            except InvalidPayload as exc:
                reject_payload(session, source, f"archive:{item.archive_id}", str(exc))
        return record_snapshots(session, snapshots)
