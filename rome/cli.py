"""The `rome` command: migrate, run the demo, audit, inject, normalize and replay feeds, reset."""

from __future__ import annotations

import argparse
import importlib.util
import os
import select
import signal
import sys
import time
from pathlib import Path

from rome import db
from rome.formats import FORMAT_NAMES
from rome.settings import SettingsError, load_settings, prepare_data_dir


def cmd_db_upgrade(args) -> int:
    settings = load_settings()
    prepare_data_dir(settings)
    database = db.prepare(settings.database_url)
    database.engine.dispose()
    print(f"database ready: {database.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_audit(args) -> int:
    from rome.audit import audit, compare, tallies_by_key
    from rome.inject import read_expectation

    settings = load_settings()
    database = db.connect(settings.database_url)
    with database.Session() as session:
        differences = audit(session)
        if args.expect:
            differences += compare(tallies_by_key(session), read_expectation(args.expect),
                                   "expected")
    database.engine.dispose()
    if differences:
        print(f"audit FAILED: {len(differences)} differences", file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print("audit ok: every count is its history's newest, every tally the sum of its counts,"
          " every series ends on its tally"
          + (f", and the totals are those in {args.expect}" if args.expect else ""))
    return 0


def cmd_inject(args) -> int:
    from rome.inject import plan_stream, write_expectation
    from workers.publish import publish_stream

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
    sent = publish_stream(messages, rate=args.rate)
    print(f"published {sent} messages carrying {args.updates} counts"
          f" ({len(messages) - sent} failed)")
    return 0 if sent == len(messages) else 1


def cmd_normalize(args) -> int:
    import json

    from rome.formats import parse_feed
    from rome.snapshot import InvalidPayload

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
    from rome.replay import delays, plan_replay
    from rome.snapshot import SOURCE_ID

    if not SOURCE_ID.fullmatch(args.source):
        print(f"rome replay: --source must be a short lowercase id, got {args.source!r}",
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
    from workers.publish import publish_stream

    sent = publish_stream([r.message for r in recorded], delays=delays(recorded, args.speed))
    print(f"published {sent} of {len(recorded)} files as source {args.source}")
    return 0 if sent == len(recorded) else 1


def cmd_broker_migrate(args) -> int:
    settings = load_settings()
    if not settings.amqp_broker:
        print("rome broker migrate: ROME_BROKER_URL must name RabbitMQ (amqp://); the embedded "
              "broker keeps its classic queues", file=sys.stderr)
        return 2
    from workers.migrate import migrate

    kept = 0
    for moved in migrate(settings.broker_url, delete=args.delete):
        if not moved.found:
            print(f"{moved.source}: no classic queue")
            continue
        line = f"{moved.source} -> {moved.target}: moved {moved.messages} messages"
        if moved.deleted:
            line += "; classic queue deleted"
        if moved.kept_because:
            line += f"; kept: {moved.kept_because}"
            kept += 1
        print(line)
    return 1 if kept else 0


def cmd_demo(args) -> int:
    from datetime import UTC, datetime

    from rome import data_folder
    from rome.demo import run_demo

    settings = load_settings()
    try:
        # Held until the demo ends: rome reset refuses to delete a folder in use.
        lock = data_folder.hold(settings.data_dir)
    except data_folder.FolderInUse as exc:
        print(f"rome demo: {exc}, or set ROME_DATA_DIR to another folder", file=sys.stderr)
        return 1
    with lock:
        prepare_data_dir(settings)
        database = db.prepare(settings.database_url)
        with database.Session.begin() as session:
            if db.begin_night_if_over(session, settings.night_seconds, datetime.now(UTC)):
                print("rome demo: the last simulated night was over: a new one begins now")
        database.engine.dispose()
        return run_demo(
            settings,
            web_port=args.web_port,
            flower_port=args.flower_port,
            single_worker=args.single_worker,
            host=args.host,
            verbose=args.verbose,
        )


def cmd_reset(args) -> int:
    from rome import data_folder

    settings = load_settings()
    folder = settings.data_dir
    outside = data_folder.not_embedded(settings)
    if outside and not args.force:
        print(f"rome reset: it deletes the data folder {folder}, but {'; '.join(outside)},"
              " which it leaves alone. Clear results there with the wipeout (POST"
              " /race/wipeout), or add --force to delete the folder anyway.", file=sys.stderr)
        return 2
    found = data_folder.entries(folder) if folder.is_dir() else []
    if not found:
        print(f"nothing to reset: {folder} holds no Rome data")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("rome reset: add --yes to delete without being asked", file=sys.stderr)
            return 2
        answer = input(f"Delete the results, queued messages, beat's schedule, Flower's login"
                       f" and the web's session key in {folder}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    try:
        deleted, left = data_folder.delete(folder)
    except data_folder.FolderInUse as exc:
        print(f"rome reset: {exc}", file=sys.stderr)
        return 1
    print(f"deleted from {folder}: {', '.join(deleted)}")
    if left:
        print(f"left {len(left)} other entries in place: {', '.join(left)}")
    else:
        print(f"deleted {folder} itself: it is empty")
    return 0


def cmd_bench(args) -> int:
    # The bench's tools are an extra, not part of what running Rome installs.
    needed = ["requests", *(["matplotlib"] if args.plots else [])]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        print(f"rome bench needs {' and '.join(missing)}: install the bench extra with"
              " `.venv/bin/pip install -e '.[bench]'`", file=sys.stderr)
        return 2
    from workers.bench import main as bench_main

    settings = load_settings()
    prepare_data_dir(settings)
    return bench_main(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rome", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    database = commands.add_parser("db", help="manage the database schema")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations and seed the catalog").set_defaults(
        func=cmd_db_upgrade
    )

    audit = commands.add_parser(
        "audit", help="check counts against the history and tallies against counts"
    )
    audit.add_argument("--expect", type=Path, help="also compare the tallies with this file")
    audit.set_defaults(func=cmd_audit)

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
                        help="counts per second (0: as fast as possible)")
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
        "replay", help="publish recorded feed files into the pipeline, in version order"
    )
    replay.add_argument("--source", required=True, help="source id to publish them as")
    replay.add_argument("--format", choices=FORMAT_NAMES, default=None,
                        help="the files' format (default: told from each file)")
    replay.add_argument("--speed", type=float, default=0.0,
                        help="replay the recording's own gaps this many times faster "
                             "(0: as fast as confirmed)")
    replay.add_argument("--dry-run", action="store_true",
                        help="list the files in the order they would be sent, send nothing")
    replay.add_argument("paths", type=Path, nargs="+", help="files or folders")
    replay.set_defaults(func=cmd_replay)

    broker = commands.add_parser("broker", help="manage Rome's queues on RabbitMQ")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    migrate = broker_commands.add_parser(
        "migrate", help="move what classic queues hold into the quorum queues that replace them")
    migrate.add_argument("--delete", action="store_true",
                         help="then delete each classic queue left empty and unconsumed")
    migrate.set_defaults(func=cmd_broker_migrate)

    demo = commands.add_parser("demo", help="run workers, beat, web and Flower until Ctrl-C")
    demo.add_argument("--web-port", type=int, default=8083)
    demo.add_argument("--flower-port", type=int, default=5555)
    demo.add_argument("--host", default="127.0.0.1", help="address web and Flower listen on")
    demo.add_argument(
        "--single-worker", action="store_true", help="one worker for all queues, not one each"
    )
    demo.add_argument(
        "--verbose", action="store_true",
        help="log every task and request (ROME_LOG_LEVEL=info); by default only warnings",
    )
    demo.set_defaults(func=cmd_demo)
    reset = commands.add_parser(
        "reset", help="delete the embedded data: results, queued messages, beat's schedule"
    )
    reset.add_argument("--yes", action="store_true", help="do not ask before deleting")
    reset.add_argument("--force", action="store_true",
                       help="delete the folder even when ROME_DATABASE_URL or ROME_BROKER_URL"
                            " point elsewhere (their data stays)")
    reset.set_defaults(func=cmd_reset)
    bench = commands.add_parser(
        "bench", help="measure ingest against a COPY ceiling and one message per update"
    )
    bench.add_argument("--updates", type=int, default=200_000, help="updates for Rome's path")
    bench.add_argument("--naive-updates", type=int, default=3_000,
                       help="updates for the one-message-per-update baseline")
    bench.add_argument("--batch", type=int, default=2_000,
                       help="updates per message (a 2,000-row AP feed is about 430 KB)")
    bench.add_argument("--sweep", type=lambda v: [int(x) for x in v.split(",") if x],
                       default=[1, 10, 100, 1000, 2000, 4000],
                       help="batch sizes for the throughput plot, comma-separated")
    bench.add_argument("--freshness-seconds", type=float, default=30.0)
    bench.add_argument("--freshness-rate", type=float, default=1000.0,
                       help="updates per second offered while measuring freshness")
    bench.add_argument("--freshness-batch", type=int, default=50,
                       help="updates per message while measuring freshness")
    bench.add_argument("--concurrency", type=int, default=2, help="worker processes")
    bench.add_argument("--plots", type=Path, help="write the two PNG plots into this folder")
    bench.add_argument("--wipe", action="store_true",
                       help="allow bench to erase the results it finds")
    bench.add_argument("--growth", action="store_true",
                       help="instead: fill the history in steps and measure the apply rate "
                            "and the read endpoints at each (PostgreSQL)")
    bench.add_argument("--growth-rows", type=int, default=10_000_000,
                       help="history rows to fill up to with --growth")
    bench.add_argument("--growth-steps", type=lambda v: [int(x) for x in v.split(",") if x],
                       help="history sizes to measure at (default: 0, 1/10, 1/4, 1/2, all)")
    bench.add_argument("--growth-units", type=int, default=1_000,
                       help="reporting units per source in the pool --growth fills from")
    bench.add_argument("--readers", type=int, default=4,
                       help="concurrent readers of each endpoint with --growth")
    bench.add_argument("--read-rounds", type=int, default=25,
                       help="requests per reader and endpoint at each --growth step")
    bench.add_argument("--scale", type=lambda v: [int(x) for x in v.split(",") if x],
                       help="instead: throughput with N caesar and N notekeeper processes, "
                            "for each N in this comma-separated list (e.g. 1,2,4)")
    bench.add_argument("--scale-runs", type=int, default=3,
                       help="runs per N with --scale (the median is reported)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except BrokenPipeError:
        if not reader_went_away(sys.stdout):
            raise  # a socket's broken pipe, say: a real error, with its traceback
        # Python's own recipe (library/signal, "Note on SIGPIPE"): what is still
        # buffered goes to devnull, or the flush at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        # 141, as a shell reports `cat` killed by SIGPIPE: under `set -o pipefail`,
        # `rome normalize f | head -1` then fails as the same pipe with cat does, and
        # 0 would claim every line was read.
        return 128 + signal.SIGPIPE


def run(argv: list[str] | None) -> int:
    """Run one rome command; flush its output, so a reader that left shows up here."""
    args = build_parser().parse_args(argv)  # argparse already stops quietly on a closed pipe
    try:
        code = args.func(args)
    except SettingsError as exc:
        print(f"rome: bad setting: {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    return code


def reader_went_away(stream) -> bool:
    """Tell whether stream is a pipe (or socket) whose reading end is closed."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # not a file: pytest's capture, say
    poll = select.poll()
    poll.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


if __name__ == "__main__":
    sys.exit(main())
