"""`rome db upgrade`, `rome audit` and `rome source rollback`: the schema, whether the totals
add up, and undoing one source's bad versions."""

from __future__ import annotations

import sys
from pathlib import Path

from rome.settings import load_settings, prepare_data_dir
from rome.store import db


def cmd_db_upgrade(args) -> int:
    settings = load_settings()
    prepare_data_dir(settings)
    database = db.prepare(settings.database_url)
    database.engine.dispose()
    print(f"database ready: {database.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_audit(args) -> int:
    from rome.feeds.inject import read_expectation
    from rome.store.audit import audit, compare, tallies_by_key

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


def cmd_source_rollback(args) -> int:
    from rome.store.audit import audit
    from rome.store.rollback import rollback_source

    settings = load_settings()
    database = db.connect(settings.database_url)
    with database.Session.begin() as session:
        result = rollback_source(session, args.source, args.above)
    with database.Session() as session:
        differences = audit(session)
    database.engine.dispose()
    print(f"{args.source}: removed {result.history} history rows above version {args.above}; "
          f"{result.counts_reset} counts set back, {result.counts_deleted} deleted, "
          f"{result.tallies} tallies recomputed, {result.statuses} race statuses deleted")
    if differences:
        print(f"audit FAILED after the rollback: {len(differences)} differences",
              file=sys.stderr)
        return 1
    print("audit ok")
    return 0


def register(commands) -> None:
    """Add `db upgrade`, `audit` and `source rollback` to the rome command."""
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

    source = commands.add_parser("source", help="repair one source's results")
    source_commands = source.add_subparsers(dest="source_command", required=True)
    rollback = source_commands.add_parser(
        "rollback", help="remove a source's versions above one (a future-dated file, say) and "
        "recompute its tallies and series; other sources are untouched")
    rollback.add_argument("source", help="the source's id: ap, mc, sos...")
    rollback.add_argument("--above", type=int, required=True, metavar="VERSION",
                          help="remove every version newer than this one")
    rollback.set_defaults(func=cmd_source_rollback)
