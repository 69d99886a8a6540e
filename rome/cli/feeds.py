"""`rome inject`, `rome normalize` and `rome replay`: feeds known, read and recorded."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rome.feeds.formats import FORMAT_NAMES


def cmd_inject(args) -> int:
    from rome.feeds.inject import plan_stream, write_expectation
    from rome.ops.seam import publish_stream

    messages, expectation = plan_stream(
        args.updates,
        batch=args.batch,
        duplicate_rate=args.duplicate_rate,
        shuffle=args.shuffle,
        bad=args.bad,
        start=args.start if args.start is not None else int(time.time()),
        seed=args.seed,
        units=args.units,
    )
    if args.expect:
        write_expectation(args.expect, expectation)
    started = time.monotonic()
    sent = publish_stream(messages, rate=args.rate)
    seconds = time.monotonic() - started
    rows = sum(m.counts for m in messages[:sent])
    # --rate paces the rows the messages carry (each vote type and the top unit's rollup
    # is a count of its own): what caesar applies, more than --updates' unit-level counts.
    print(f"published {sent} messages carrying {args.updates} counts"
          f" ({len(messages) - sent} failed); {rows} rows in {seconds:.1f} s,"
          f" {rows / max(seconds, 1e-9):.0f} rows/s")
    return 0 if sent == len(messages) else 1


def cmd_normalize(args) -> int:
    import json

    from rome.feeds.formats import parse_feed
    from rome.feeds.snapshot import InvalidPayload

    try:
        snapshot = parse_feed(args.format, args.file.read_bytes(), source=args.source,
                              version=args.version)
    except (InvalidPayload, OSError) as exc:
        print(f"rome normalize: {args.file}: {exc}", file=sys.stderr)
        return 1
    races = {r.key: r for r in snapshot.races}
    units = {u.key: u for u in snapshot.units}
    candidates = {(c.race, c.key): c for c in snapshot.candidates}
    statuses = {s.race: s for s in snapshot.statuses}
    for n in snapshot.counts:
        unit, candidate = units[n.unit], candidates[(n.race, n.candidate)]
        status = statuses.get(n.race)
        print(json.dumps({
            "source": snapshot.source, "format": snapshot.format, "version": snapshot.version,
            "feed_at": snapshot.feed_at, "test": snapshot.test,
            "race": n.race, "race_name": races[n.race].name,
            "unit": n.unit, "unit_name": unit.name, "level": unit.level, "parent": unit.parent,
            "candidate": n.candidate, "first": candidate.first, "last": candidate.last,
            "party": candidate.party, "vote_type": n.vote_type, "votes": n.votes,
            "winner": bool(status and status.winner == n.candidate),
        }))
    return 0


def cmd_replay(args) -> int:
    from rome.feeds.replay import delays, plan_replay
    from rome.feeds.snapshot import SOURCE_ID

    if args.all:
        if not args.archive or args.source is not None:
            print("rome replay: --all goes with --archive and without --source",
                  file=sys.stderr)
            return 2
        return replay_journal(args)
    if args.source is None:
        print("rome replay: --source ID is needed (or --archive --all)", file=sys.stderr)
        return 2
    if not SOURCE_ID.fullmatch(args.source):
        print(f"rome replay: --source must be a short lowercase id, got {args.source!r}",
              file=sys.stderr)
        return 2
    if args.archive:
        return replay_archive(args)
    if args.since is not None or not args.paths:
        print("rome replay: files or folders to replay (or --archive; --since goes with it)",
              file=sys.stderr)
        return 2
    recorded = plan_replay(args.paths, args.source, args.format)
    if not recorded:
        print("rome replay: no feed files found", file=sys.stderr)
        return 1
    for r in recorded:
        note = f"version {r.version}" if r.error is None else f"will be rejected: {r.error}"
        print(f"{r.path}: {note}")
    if args.dry_run:
        return 0
    from rome.ops.seam import publish_stream

    sent = publish_stream([r.message for r in recorded], delays=delays(recorded, args.speed))
    print(f"published {sent} of {len(recorded)} files as source {args.source}")
    return 0 if sent == len(recorded) else 1


def _since(args):
    """--since as an aware datetime (None if not given); ValueError if it cannot be read."""
    from datetime import UTC, datetime

    if args.since is None:
        return None
    try:
        since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since must be an ISO 8601 time, got {args.since!r}") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def replay_archive(args) -> int:
    """Publish what the archive holds of a source, in fetch order, each as its claim check."""
    from types import SimpleNamespace

    from rome.feeds.inject import Message
    from rome.feeds.replay import delays
    from rome.settings import load_settings
    from rome.store import db
    from rome.store.archive import fetches

    since = _archive_since(args)
    if since is False:
        return 2
    database = db.connect(load_settings().database_url)
    with database.Session() as session:
        rows = fetches(session, args.source, since)
    if not rows:
        print(f"rome replay: the archive holds no feed fetched from {args.source!r}"
              f"{' since ' + args.since if since else ''}", file=sys.stderr)
        return 1
    for row in rows:
        print(f"{row.fetched_at.isoformat()} #{row.id} {row.url} ({row.kind}, version "
              f"{row.version or '-'}{', ' + row.scope if row.scope else ''})")
    if args.dry_run:
        return 0
    from rome.ops.seam import publish_stream

    messages = [Message(args.source, str(row.id), "archive", None, row.format) for row in rows]
    gaps = delays([SimpleNamespace(feed_at=row.fetched_at.timestamp()) for row in rows],
                  args.speed)
    sent = publish_stream(messages, delays=gaps)
    print(f"published {sent} of {len(rows)} archived fetches of {args.source}")
    return 0 if sent == len(rows) else 1


def _archive_since(args):
    """--since as a time (or None), or False once the reason it is refused is printed."""
    if args.paths:
        print("rome replay: --archive replays the archive; give no files", file=sys.stderr)
        return False
    try:
        return _since(args)
    except ValueError as exc:
        print(f"rome replay: {exc}", file=sys.stderr)
        return False


def replay_journal(args) -> int:
    """Publish every source's archived fetches, in fetch order, from the archive's journals.

    The database may be new (lost and made again by `rome db upgrade`): each
    journal entry gets its index row back (or finds it still there), then goes
    as its claim check, so the pipeline rebuilds the state it had.
    """
    from types import SimpleNamespace

    from rome.feeds.inject import Message
    from rome.feeds.replay import delays
    from rome.settings import load_settings
    from rome.store import db, journal
    from rome.store.archive import FEED_KINDS, Archive

    since = _archive_since(args)
    if since is False:
        return 2
    settings = load_settings()
    archive = Archive(settings.archive_dir)
    try:
        entries, notes = journal.read_all(archive.root)
    except journal.JournalError as exc:
        print(f"rome replay: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"rome replay: {note}", file=sys.stderr)
    present = [e for e in entries if archive.path(e.sha256).exists()]
    if len(present) < len(entries):
        print(f"rome replay: {len(entries) - len(present)} journalled fetches have no body "
              f"left (pruned by ROME_ARCHIVE_RETENTION): left out", file=sys.stderr)
    sent_entries = [e for e in present if e.kind in FEED_KINDS
                    and (since is None or e.when >= since)]
    if not sent_entries:
        print("rome replay: the archive's journal holds no feed to replay"
              f"{' since ' + args.since if since else ''}", file=sys.stderr)
        return 1
    for e in sent_entries:
        print(f"{e.when.isoformat()} {e.source} {e.url} ({e.kind}, version "
              f"{e.version or '-'}{', ' + e.scope if e.scope else ''})")
    if args.dry_run:
        return 0
    database = db.connect(settings.database_url)
    try:
        with database.Session.begin() as session:
            ids = journal.reindex(session, present)
    finally:
        database.engine.dispose()
    by_entry = dict(zip(map(id, present), ids, strict=True))
    from rome.ops.seam import publish_stream

    messages = [Message(e.source, str(by_entry[id(e)]), "archive", None, e.format)
                for e in sent_entries]
    gaps = delays([SimpleNamespace(feed_at=e.fetched_at) for e in sent_entries], args.speed)
    sent = publish_stream(messages, delays=gaps)
    counted = len({e.source for e in sent_entries})
    print(f"published {sent} of {len(sent_entries)} archived fetches of {counted} sources "
          f"from the archive's journal")
    return 0 if sent == len(sent_entries) else 1


def register(commands) -> None:
    """Add `inject`, `normalize` and `replay` to the rome command."""
    inject = commands.add_parser(
        "inject", help="publish known updates into notekeeper's queue, as a source does"
    )
    inject.add_argument("--updates", type=int, required=True,
                        help="how many unit-level counts in all")
    inject.add_argument("--batch", type=int, default=1, help="counts per feed message")
    inject.add_argument("--units", type=int, default=0,
                        help="units per source the counts revisit (default: two batches' worth)")
    inject.add_argument("--duplicate-rate", type=float, default=0.0,
                        help="chance each message is published twice")
    inject.add_argument("--shuffle", action="store_true", help="publish in random order")
    inject.add_argument("--rate", type=float, default=0.0,
                        help="rows per second, as caesar applies them: each vote type and "
                             "rollup a row (0: as fast as possible)")
    inject.add_argument("--bad", type=int, default=0, help="bad payloads to mix in")
    inject.add_argument("--seed", default="inject")
    inject.add_argument("--start", type=int, default=None,
                        help="feed time of each source's first snapshot, in seconds since "
                             "1970 (default: now, so its versions are newer than earlier runs)")
    inject.add_argument("--expect", type=Path,
                        help="write the totals the stream must produce here")
    inject.set_defaults(func=cmd_inject)

    normalize = commands.add_parser(
        "normalize", help="print the canonical counts of one feed file as JSON lines"
    )
    normalize.add_argument("--format", required=True, choices=FORMAT_NAMES)
    normalize.add_argument("--source", default="file", help="source id to read it as")
    normalize.add_argument("--version", type=int, default=None,
                           help="the feed's version where the file does not say (Clarity)")
    normalize.add_argument("file", type=Path)
    normalize.set_defaults(func=cmd_normalize)

    replay = commands.add_parser(
        "replay", help="publish recorded feed files (or the archive) into the pipeline, in "
                       "version (fetch) order"
    )
    replay.add_argument("--source", default=None, help="source id to publish them as")
    replay.add_argument("--format", choices=FORMAT_NAMES, default=None,
                        help="the files' format (default: told from each file)")
    replay.add_argument("--speed", type=float, default=0.0,
                        help="replay the recording's own gaps this many times faster "
                             "(0: as fast as confirmed)")
    replay.add_argument("--dry-run", action="store_true",
                        help="list the files in the order they would be sent, send nothing")
    replay.add_argument("--archive", action="store_true",
                        help="replay what was fetched from --source, from the archive, in "
                             "fetch order (ROME_SOURCES polling)")
    replay.add_argument("--all", action="store_true",
                        help="with --archive: every source, from the archive's own journal, "
                             "indexing again what a new database lacks (rebuild after a "
                             "lost database)")
    replay.add_argument("--since", default=None,
                        help="with --archive: only fetches from this ISO 8601 time on")
    replay.add_argument("paths", type=Path, nargs="*", help="files or folders")
    replay.set_defaults(func=cmd_replay)
