"""The fault-free replay `rome chaos` compares its final state with, and the comparison.

The same input, applied in order, in this process, without a broker or a
fault: every tick each simulated source emitted (rendered again from the
night the run's database stored) and every recorded file, parsed as
notekeeper parses it and recorded as caesar records it.
"""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import func, select

from rome.feeds.catalog import default_catalog, feed_format
from rome.feeds.formats import parse_feed
from rome.feeds.replay import plan_replay
from rome.feeds.simulator import Night, emit_tick
from rome.feeds.snapshot import InvalidPayload
from rome.settings import load_settings
from rome.store import db
from rome.store.audit import audit, tallies_by_key
from rome.store.models import RejectedRow, SourceRow
from rome.store.tally import record_snapshots


def rebuild_reference(run_url: str, reference_url: str, emitted: dict[str, set[int]],
                      replays: list[tuple[str, str, list[Path]]], env: dict[str, str]) -> None:
    """Apply the run's input, fault-free and in order, to the empty database at reference_url."""
    settings = load_settings({**env, "ROME_ENV": "development"})
    run = db.connect(run_url)
    with run.Session() as session:
        started = {row.id: row.started_at.timestamp()
                   for row in session.scalars(select(SourceRow))
                   if row.started_at is not None}
    run.engine.dispose()
    reference = db.connect(reference_url)
    catalog = default_catalog()
    try:
        for source in sorted(emitted):
            night = Night(settings.seed, settings.update_chance, settings.source_interval,
                          started[source], settings.night_seconds)
            fmt = catalog.sources[source].format
            for tick in sorted(emitted[source]):
                body, _ = emit_tick(source, tick, night, units=settings.reporting_units)
                if body is None:
                    continue
                version = tick if fmt == "clarity" else None
                snapshot = parse_feed(feed_format(source, None), body.decode(), source=source,
                                      version=version, max_ahead=None)
                with reference.Session.begin() as session:
                    record_snapshots(session, [snapshot])
        for source, fmt, paths in replays:
            for recorded in plan_replay(paths, source, fmt):
                message = recorded.message
                body = (base64.b64decode(message.body) if message.encoding == "base64"
                        else message.body)
                try:
                    snapshot = parse_feed(feed_format(source, message.format), body,
                                          source=source, version=message.version,
                                          max_ahead=None)
                except InvalidPayload:
                    continue
                with reference.Session.begin() as session:
                    record_snapshots(session, [snapshot])
    finally:
        reference.engine.dispose()


def compare_states(run_url: str, reference_url: str, summary) -> None:
    """Fill summary's counts, lost, doubled, differing keys, audit problems and rejected rows."""
    run, reference = db.connect(run_url), db.connect(reference_url)
    try:
        with run.Session() as session:
            got = tallies_by_key(session)
            summary.audit_problems = [str(d) for d in audit(session)]
            summary.rejected = session.scalar(select(func.count()).select_from(RejectedRow))
        with reference.Session() as session:
            want = tallies_by_key(session)
    finally:
        run.engine.dispose()
        reference.engine.dispose()
    summary.counts = len(got)
    for key in sorted(set(got) | set(want), key=str):
        have, should = got.get(key, 0), want.get(key, 0)
        if have < should:
            summary.lost += should - have
        elif have > should:
            summary.doubled += have - should
        if key not in got or key not in want or have != should:
            summary.differing_keys.append(f"{key}: run {got.get(key)} reference {want.get(key)}")
