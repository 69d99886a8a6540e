"""The `rome` command: migrate the database, run the demo, audit the tallies."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rome import db
from rome.settings import SettingsError, load_settings, prepare_data_dir


def cmd_db_upgrade(args) -> int:
    settings = load_settings()
    prepare_data_dir(settings)
    database = db.prepare(settings.database_url)
    database.engine.dispose()
    print(f"database ready: {database.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_audit(args) -> int:
    from rome.inject import read_expectation
    from rome.tally import audit, compare, tallies

    settings = load_settings()
    database = db.connect(settings.database_url)
    with database.Session() as session:
        differences = audit(session)
        if args.expect:
            differences += compare(tallies(session), read_expectation(args.expect), "expected")
    database.engine.dispose()
    if differences:
        print(f"audit FAILED: {len(differences)} differences", file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print("audit ok: every tally equals the sum of its ledger rows"
          + (f" and the totals in {args.expect}" if args.expect else ""))
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
        first_tick=args.first_tick if args.first_tick is not None else time.time_ns() // 10**6,
        seed=args.seed,
    )
    if args.expect:
        write_expectation(args.expect, expectation)
    sent = publish_stream(messages, rate=args.rate)
    print(f"published {sent} messages carrying {args.updates} updates"
          f" ({len(messages) - sent} failed)")
    return 0 if sent == len(messages) else 1


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
    from rome.demo import run_demo

    settings = load_settings()
    prepare_data_dir(settings)
    db.prepare(settings.database_url).engine.dispose()
    return run_demo(
        settings,
        web_port=args.web_port,
        flower_port=args.flower_port,
        single_worker=args.single_worker,
        host=args.host,
    )


def cmd_bench(args) -> int:
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
        "audit", help="recompute every tally from the ledger; exit 1 if any differ"
    )
    audit.add_argument("--expect", type=Path, help="also compare the tallies with this file")
    audit.set_defaults(func=cmd_audit)

    inject = commands.add_parser(
        "inject", help="publish known updates into notekeeper's queue, as a source does"
    )
    inject.add_argument("--updates", type=int, required=True, help="how many valid updates")
    inject.add_argument("--batch", type=int, default=1, help="updates per feed message")
    inject.add_argument("--duplicate-rate", type=float, default=0.0,
                        help="chance each message is published twice")
    inject.add_argument("--shuffle", action="store_true", help="publish in random order")
    inject.add_argument("--rate", type=float, default=0.0,
                        help="updates per second (0: as fast as possible)")
    inject.add_argument("--bad", type=int, default=0, help="bad payloads to mix in")
    inject.add_argument("--seed", default="inject")
    inject.add_argument("--first-tick", type=int, default=None,
                        help="tick of the first message (default: now in ms, so ids are new)")
    inject.add_argument("--expect", type=Path,
                        help="write the totals the stream must produce here")
    inject.set_defaults(func=cmd_inject)

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
    demo.set_defaults(func=cmd_demo)
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
                       help="allow bench to erase the tallies and ledger it finds")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"rome: bad setting: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
