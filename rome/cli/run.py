"""`rome demo` and `rome reset`: run the whole pipeline on one machine, and start again."""

from __future__ import annotations

import sys

from rome.settings import load_settings, prepare_data_dir
from rome.store import db


def cmd_demo(args) -> int:
    from datetime import UTC, datetime

    from rome.ops import data_folder
    from rome.ops.demo import run_demo

    settings = load_settings()
    if settings.sources_file is not None:
        from rome.feeds.sources_file import SourcesError, load_sources

        try:  # checked before anything starts: a bad file is said once, here
            specs = load_sources(settings.sources_file)
        except SourcesError as exc:
            print(f"rome demo: {exc}", file=sys.stderr)
            return 2
        print(f"rome demo: polling {', '.join(s.id for s in specs)} from "
              f"{settings.sources_file}; no simulated sources")
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
            # A live night is never over by the clock: only the simulated one restarts.
            if settings.sources_file is None and db.begin_night_if_over(
                    session, settings.night_seconds, datetime.now(UTC)):
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
    from rome.ops import data_folder

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
        answer = input(f"Delete the results, queued messages, beat's schedule, Flower's login,"
                       f" the message keys and the web's session key in {folder}? [y/N] ")
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


def register(commands) -> None:
    """Add `demo` and `reset` to the rome command."""
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
