"""`rome publish --all`: rebuild the published folder (after a restore, or on a new host)."""

from __future__ import annotations

import sys
import time

from rome.settings import load_settings


def cmd_publish(args) -> int:
    from rome.publish.publisher import Publisher
    from rome.read.freshness import stale_after
    from rome.store import db

    settings = load_settings()
    if not args.all:
        print("rome publish: say --all: the publish workers publish what changes by "
              "themselves", file=sys.stderr)
        return 2
    database = db.connect(settings.database_url)
    started = time.monotonic()
    try:
        done = Publisher(settings.publish_dir,
                         stale_after(settings.source_interval, settings.update_chance)
                         ).publish_from(database)
    finally:
        database.engine.dispose()
    print(f"published {done.races} races into {settings.publish_dir} in "
          f"{time.monotonic() - started:.1f} s: {len(done.written)} files written, "
          f"{len(done.removed)} removed, the rest unchanged")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "publish", help="rebuild the static files readers read (ROME_PUBLISH_DIR)",
        description="Write the national index, every state and every race as the API shows "
        "them, and each race's page, into ROME_PUBLISH_DIR (default data/public), with a .gz "
        "beside each; remove the files of races Rome no longer shows. Unchanged files stay.")
    parser.add_argument("--all", action="store_true", help="publish every race (required)")
    parser.set_defaults(func=cmd_publish)
