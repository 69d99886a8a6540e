"""`rome feedserver`: serve recorded or simulated feeds over HTTP, as AP, Clarity and NIST do."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def cmd_feedserver(args) -> int:
    from rome.feeds.feedserver import FeedServer, FeedServerError

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"rome feedserver: {args.api_key_env} names no key in the environment",
                  file=sys.stderr)
            return 2
    try:
        server = FeedServer(
            ap=args.ap, clarity=args.clarity, nist=args.nist, simulated=args.simulated,
            host=args.host, port=args.port, steps=args.steps, api_key=api_key,
            requests_per_minute=args.requests_per_minute, page_size=args.page_size,
            clarity_state=args.clarity_state, interval=args.interval,
            slow_seconds=args.slow_seconds, refuse_agents=tuple(args.refuse_agent),
        )
        base = server.start()
    except (FeedServerError, OSError) as exc:
        print(f"rome feedserver: {exc}", file=sys.stderr)
        return 2
    print(f"serving feeds at {base}", flush=True)
    for fmt, url in server.urls():
        print(f"  {fmt:8} {url}", flush=True)
    if args.write_sources:
        try:
            args.write_sources.write_text(server.sources_toml(args.interval, args.api_key_env))
        except OSError as exc:
            server.stop()
            print(f"rome feedserver: cannot write the sources file: {exc}", file=sys.stderr)
            return 2
        print(f"sources file (ROME_SOURCES): {args.write_sources}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(args.advance_every if args.advance_every > 0 else None):
            server.advance()
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0


def register(commands) -> None:
    """Add `feedserver` to the rome command."""
    serve = commands.add_parser(
        "feedserver",
        help="serve recorded (or simulated) feed files over HTTP with AP's, Clarity's and "
             "NIST's semantics, for tests and demos",
    )
    serve.add_argument("--port", type=int, required=True, help="port (0: pick a free one)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--ap", type=Path, nargs="+", default=[], metavar="FILE",
                       help="AP v2 JSON answers (several of one date: its versions in order)")
    serve.add_argument("--clarity", type=Path, nargs="+", default=[], metavar="PATH",
                       help="Clarity detail.xml files or folders: a state's file and its "
                            "counties' files")
    serve.add_argument("--clarity-state", default=None,
                       help="the state of Clarity county files served without a state file")
    serve.add_argument("--nist", type=Path, nargs="+", default=[], metavar="FILE",
                       help="NIST 1500-100 V2 JSON reports")
    serve.add_argument("--simulated", action="store_true",
                       help="serve the simulated night (ap, mc, sos), moving with the clock")
    serve.add_argument("--interval", type=float, default=2.0,
                       help="seconds per tick of the simulated night, and the poll interval "
                            "written by --write-sources")
    serve.add_argument("--write-sources", type=Path, default=None, metavar="FILE",
                       help="write a sources file (ROME_SOURCES) naming every feed served, "
                            "each polled every --interval seconds")
    serve.add_argument("--steps", type=int, default=4,
                       help="versions derived from a single recorded file")
    serve.add_argument("--advance-every", type=float, default=10.0, metavar="SECONDS",
                       help="move recorded feeds to their next version this often (0: never)")
    serve.add_argument("--page-size", type=int, default=None,
                       help="AP races per answer; more come in isTruncated pages")
    serve.add_argument("--requests-per-minute", type=int, default=None,
                       help="AP's quota: over it, a 403 with an XML body")
    serve.add_argument("--slow-seconds", type=float, default=5.0,
                       help="how long a slow fault holds its answer (POST /_feedserver/fault)")
    serve.add_argument("--refuse-agent", action="append", default=[], metavar="TEXT",
                       help="answer Clarity requests whose User-Agent holds TEXT with a 403, "
                            "as a site's firewall does (repeatable)")
    serve.add_argument("--api-key-env", default=None, metavar="NAME",
                       help="environment variable holding the AP key to require as x-api-key")
    serve.set_defaults(func=cmd_feedserver)
