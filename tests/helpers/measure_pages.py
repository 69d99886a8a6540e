"""Measure the national reads at size (a measurement, not a test; docs/benchmarks.md).

    ROME_TEST_DATABASE_URL=postgresql://... python -m tests.helpers.measure_pages --races 5000

Fills the database (its schema dropped and made afresh) with `--races` races of
tests.helpers.builders.national_snapshot (three candidates, a state level and two
counties each), then, in process through Flask's test client (the app, its
queries and templates; no HTTP server), asks each page once (a process's first
request of a page compiles its template and queries), then times each page: the
first request after a change to the results (what a reader gets once per results
version) and the
median of the requests after it (served from the per-version answers). Prints a
Markdown table with the bytes of each answer.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from rome.store import db
from tests.helpers.builders import national_snapshot
from tests.helpers.services import PG_URL
from tests.helpers.webapp import dispose, make_app, record

PATHS = ("/index", "/state/CA", "/api/index", "/api/states/CA",
         "/api/races?state=CA&limit=50", "/index?q=ca+house")


def fresh(url: str) -> None:
    if url.startswith("postgresql"):
        engine = create_engine(db.driver_url(url))
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    db.prepare(url).engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", default=PG_URL)
    args = parser.parse_args()
    fresh(args.database)
    started = time.perf_counter()
    record(args.database, national_snapshot(args.races, counties=2))
    print(f"recorded {args.races:,} races in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as root:
        app = make_app(args.database, Path(root))
        client = app.test_client()
        # Each page once first: a process's first request of a page compiles its template
        # and its queries (about 80 ms more for a state's page), once per process, not once
        # per change of the results.
        for path in PATHS:
            client.get(path).get_data()
        print("| page | bytes | first after a change (ms) | then, median of "
              f"{args.repeat} (ms) |\n|---|---|---|---|")
        for version, path in enumerate(PATHS, start=2):
            # A new version of the night's figures: every answer is built afresh.
            record(args.database, national_snapshot(args.races, counties=2, version=version,
                                                    called_every=version + 5))
            started = time.perf_counter()
            body = client.get(path).get_data()
            first = time.perf_counter() - started
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                client.get(path).get_data()
                times.append(time.perf_counter() - started)
            print(f"| `{path}` | {len(body):,} | {first * 1000:.0f} | "
                  f"{statistics.median(times) * 1000:.1f} |")
        dispose(app)


if __name__ == "__main__":
    main()
