"""`rome sources` and `rome poll ID`: the live sources of ROME_SOURCES, shown and polled now."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from rome.feeds.sources_file import SourcesError, load_sources
from rome.settings import load_settings, prepare_data_dir


def _specs(settings, command: str):
    if settings.sources_file is None:
        print(f"rome {command}: ROME_SOURCES is not set: name the sources file to poll",
              file=sys.stderr)
        return None
    try:
        return load_sources(settings.sources_file)
    except SourcesError as exc:
        print(f"rome {command}: {exc}", file=sys.stderr)
        return None


def cmd_sources(args) -> int:
    from rome.read.sources import sources_text, sources_view
    from rome.store import db

    settings = load_settings()
    specs = _specs(settings, "sources")
    if specs is None:
        return 2
    prepare_data_dir(settings)
    database = db.prepare(settings.database_url)
    with database.Session() as session:
        views = sources_view(session, specs, datetime.now(UTC))
    print(json.dumps(views, indent=2) if args.json else sources_text(views))
    return 0


def cmd_poll(args) -> int:
    """Run one poll cycle of a source now, in this process, and record what it brought."""
    from rome.ops.poller import apply_items, run_cycle, spec_of
    from rome.store import db
    from rome.store.archive import Archive

    settings = load_settings()
    specs = _specs(settings, "poll")
    if specs is None:
        return 2
    try:
        spec = spec_of(specs, args.source)
    except KeyError as exc:
        print(f"rome poll: {exc.args[0]}", file=sys.stderr)
        return 2
    prepare_data_dir(settings)
    database = db.prepare(settings.database_url)
    store = Archive(settings.archive_dir)
    recorded = []

    def send(items):
        recorded.append(apply_items(database, store, spec.id, items,
                                    max_ahead=settings.max_feed_ahead))

    cycle = run_cycle(database, store, spec, send=send)
    if cycle.skipped:
        print(f"rome poll: {spec.id}: skipped, a poll of it is still running")
        return 1
    outcome = cycle.outcome
    applied = sum(r.applied for r in recorded if r)
    print(f"{spec.id}: {outcome.requests} request(s), HTTP status {outcome.status or '-'}, "
          f"{len(outcome.items)} new feed bod{'y' if len(outcome.items) == 1 else 'ies'}, "
          f"{applied} count(s) applied" + (f"; error: {outcome.error}" if outcome.error else ""))
    return 1 if outcome.error else 0


def register(commands) -> None:
    """Add `sources` and `poll` to the rome command."""
    sources = commands.add_parser(
        "sources", help="show each source of ROME_SOURCES: last poll, status, next poll, errors")
    sources.add_argument("--json", action="store_true", help="print JSON, as /api/sources")
    sources.set_defaults(func=cmd_sources)
    poll = commands.add_parser(
        "poll", help="poll one source of ROME_SOURCES now, in this process, and record it")
    poll.add_argument("source", help="the source's id in the sources file")
    poll.set_defaults(func=cmd_poll)
