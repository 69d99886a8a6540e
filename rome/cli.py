"""The `rome` command: migrate the database, run the demo, audit the tallies."""

from __future__ import annotations

import argparse
import sys

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
    from rome.tally import audit

    settings = load_settings()
    database = db.connect(settings.database_url)
    with database.Session() as session:
        differences = audit(session)
    database.engine.dispose()
    if differences:
        print(f"audit FAILED: {len(differences)} tallies differ from the ledger", file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print("audit ok: every tally equals the sum of its ledger rows")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rome", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    database = commands.add_parser("db", help="manage the database schema")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations and seed the catalog").set_defaults(
        func=cmd_db_upgrade
    )

    commands.add_parser(
        "audit", help="recompute every tally from the ledger; exit 1 if any differ"
    ).set_defaults(func=cmd_audit)

    demo = commands.add_parser("demo", help="run workers, beat, web and Flower until Ctrl-C")
    demo.add_argument("--web-port", type=int, default=8083)
    demo.add_argument("--flower-port", type=int, default=5555)
    demo.add_argument("--host", default="127.0.0.1", help="address web and Flower listen on")
    demo.add_argument(
        "--single-worker", action="store_true", help="one worker for all queues, not one each"
    )
    demo.set_defaults(func=cmd_demo)
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
