"""`rome bench growth`: the apply rate and the read endpoints' latency as the history grows.

Fills the history in steps, on PostgreSQL, from a fixed pool of reporting
units whose figures change at every version (so current counts and tallies
stay the same size while the history and the series grow), and at each step:

- apply_rows_per_s: rows per second through Rome's own apply path
  (rome.store.tally.record_snapshots, in process, one transaction per snapshot of
  `batch` counts), the median of three rounds;
- apply_rows_per_s_empty and apply/empty: the same, batch for batch in turn,
  on a second database (the bench database's name + `_empty`) with the same
  pool over an empty history: what the machine gave an empty database at
  the same moments, so the ratio holds on a noisy machine;
- apply_plan(_empty): EXPLAIN (ANALYZE, BUFFERS) of one batch's apply
  statement, per table written: milliseconds and shared buffers hit, read,
  dirtied, written;
- history_points: how many points race 1's history shows (all, and over the
  night's last hour), what a read of it costs: at most 240 each;
- reads_ms: p50 and p99 of each read endpoint, asked by `readers` threads at
  once of the web app under gunicorn (web/gunicorn_conf.py: 2 workers of 64
  threads, as rome demo and compose run it), with /livez (no database) as
  the machine's own reference.

The fill between steps uses the same statement (rome.store.tally.apply_rows) with
count rows made here instead of parsed from feeds: it is the fast way to make
history, not what is measured. Every transaction, filled or measured, is
applied at a night's clock (record_snapshots' applied_at): 12 hours before
the bench began, 20 s more per transaction, so the history spans hours and
charts show their full number of points, as on a real night. Both databases
are emptied with TRUNCATE.
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from rome.bench.common import BenchError, Web, percentile, require_empty
from rome.data_files import BENCH_LOG
from rome.feeds.catalog import default_catalog
from rome.feeds.inject import plan_snapshots
from rome.feeds.simulator import stamp
from rome.settings import Settings
from rome.store import db
from rome.store.models import CurrentRow, SeriesRow
from rome.store.tally import (
    APPLY_STAGE,
    STAGE,
    TABLES,
    apply_params,
    apply_rows,
    copy_text,
    count_rows,
    plan_scopes,
    record_snapshots,
)

NIGHT = timedelta(hours=12)
TRANSACTION_SECONDS = 20  # 2,000 fill batches of 5,000 rows: 10 million rows in 11 hours

# /livez answers without the database: the machine's own noise, for reference.
ENDPOINTS = ("/livez", "/api/races", "/race", "/race/{race}", "/race/{race}/chart.svg",
             "/api/races/{race}/history?since={since}")


class Pool:
    """Every count key of the fixed pool, with its figure, and the tick versions come from."""

    def __init__(self, database: db.Database, units: int, batch: int, seed: str = "growth"):
        self.database = database
        self.units = units
        self.batch = batch
        self.seed = seed
        self.tick = 1
        # The night's clock: every transaction, fill or measured, is applied one
        # TRANSACTION_SECONDS after the last, from NIGHT before the bench began, so
        # a chart of the history spans hours at every step, as on a real night.
        self.clock = datetime.now(UTC) - NIGHT
        self.rng = random.Random(seed)
        formats = {s.id: s.format for s in default_catalog().sources.values()}
        # Every source's pool in full, once: the units and their ids exist from here on.
        per_source = units * 4
        self.snapshots(per_source * len(formats), per_source, apply=True)
        with database.Session() as session:
            key = (CurrentRow.race_id, CurrentRow.source_id, CurrentRow.unit_id,
                   CurrentRow.candidate_id, CurrentRow.vote_type)
            keys = [list(row) for row in session.execute(
                select(*key, CurrentRow.rank, CurrentRow.votes).order_by(*key))]
        top = {}
        for k in keys:
            top[(k[0], k[1])] = min(top.get((k[0], k[1]), k[5]), k[5])
        # The units' counts, filled a window at a time; each window's sources' top rows
        # change with it, as a feed's own total does at every version.
        self.below = [k for k in keys if k[5] != top[(k[0], k[1])]]
        self.top: dict[tuple, list[list]] = {}
        for k in keys:
            if k[5] == top[(k[0], k[1])]:
                self.top.setdefault((k[0], k[1]), []).append(k)
        self.format = formats
        self.next_key = 0

    def tick_clock(self) -> datetime:
        """Return the night's time for the next transaction, and move the clock on."""
        self.clock += timedelta(seconds=TRANSACTION_SECONDS)
        return self.clock

    def snapshots(self, counts: int, batch: int, apply: bool = False):
        """Plan snapshots of the pool at versions newer than any so far (and apply them)."""
        snapshots, _ = plan_snapshots(counts, batch=batch, units=self.units, top=True,
                                      seed=f"{self.seed}:{self.tick}", start=self.tick)
        self.tick += -(-len(snapshots) // 3) + 1
        if apply:
            for snapshot in snapshots:
                with self.database.Session.begin() as session:
                    record_snapshots(session, [snapshot], applied_at=self.tick_clock())
        return snapshots

    def fill_rows(self, size: int) -> list[tuple]:
        """Return about `size` keys of the pool with new figures at a new version, key-sorted."""
        if self.next_key >= len(self.below):
            self.next_key = 0
        window = self.below[self.next_key:self.next_key + size]
        self.next_key += size
        for pair in sorted({(k[0], k[1]) for k in window}):
            window += self.top[pair]
        tick, self.tick = self.tick, self.tick + 1
        now = time.time()
        rows = []
        for k in sorted(window):  # the lists themselves: their figures move on
            k[6] += self.rng.randint(1, 99)
            version = stamp(self.format[k[1]], tick, 1.0)[0]
            rows.append((*k[:6], k[6], version, now))
        return rows

    def fill(self, rows: int, batch: int = 5_000) -> float:
        """Append about `rows` history rows with Rome's apply statement; return rows per second."""
        done, started = 0, time.monotonic()
        while done < rows:
            chunk = self.fill_rows(min(batch, rows - done))
            with self.database.Session.begin() as session:
                apply_rows(session, chunk, applied_at=self.tick_clock())
            done += len(chunk)
        return done / max(time.monotonic() - started, 1e-9)


def _sibling(url: str, suffix: str) -> str:
    """Return the URL of a database next to url's, named with suffix, created if missing."""
    base, _, name = db.driver_url(url).rpartition("/")
    name, _, query = name.partition("?")
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                     {"n": name + suffix}):
                connection.execute(text(f'CREATE DATABASE "{name + suffix}"'))
    finally:
        admin.dispose()
    return f"{base}/{name}{suffix}" + (f"?{query}" if query else "")


def truncate(database: db.Database, tables: str = "history, series, current_counts, tallies, "
             "race_status, count_scopes") -> None:
    """Empty result tables to the last page and restart the history's ids (bench databases
    only: a wipeout deletes rows and leaves their pages to vacuum). The scopes go with the
    counts: a scope's digests stand for its counts, and digests left over an emptied
    count table would leave counts out of a stage that are not there (refused)."""
    with database.Session.begin() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))


def history_size(database: db.Database) -> dict[str, int]:
    """Return the history's and the series' sizes (the history's from its ids: no scan)."""
    with database.Session() as session:
        history = session.scalar(text("SELECT coalesce(max(id), 0) FROM history"))
        series = session.scalar(select(func.count()).select_from(SeriesRow))
        current = session.scalar(select(func.count()).select_from(CurrentRow))
    return {"history_rows": int(history), "series_rows": int(series),
            "current_rows": int(current)}


def measure_apply(pools: list[Pool], batches: int,
                  rounds: int = 3) -> tuple[list[float], list[list[float]]]:
    """Apply `rounds` x `batches` snapshots of pool.batch counts to each pool's database,
    alternating one batch each (so both see the same machine); return each median rate."""
    rates: list[list[float]] = [[] for _ in pools]
    for n in range(rounds):
        plans = [pool.snapshots(batches * pool.batch, pool.batch) for pool in pools]
        seconds = [0.0] * len(pools)
        for i in range(batches):
            order = list(range(len(pools)))
            if (i + n) % 2:
                order.reverse()
            for p in order:
                started = time.perf_counter()
                with pools[p].database.Session.begin() as session:
                    record_snapshots(session, [plans[p][i]],
                                     applied_at=pools[p].tick_clock())
                seconds[p] += time.perf_counter() - started
        for p, plan in enumerate(plans):
            rates[p].append(sum(len(s.counts) for s in plan) / seconds[p])
    return [statistics.median(r) for r in rates], rates


def _walk(node: dict, found: list[dict]) -> None:
    if node.get("Node Type") == "ModifyTable":
        found.append(node)
    for child in node.get("Plans", ()):
        _walk(child, found)


def explain_apply(pool: Pool) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) one batch's apply statement, then roll it back."""
    snapshot = pool.snapshots(pool.batch, pool.batch)[0]
    with pool.database.Session() as session:
        rows = count_rows(session, [snapshot], default_catalog()).rows
        cursor = session.connection().connection.dbapi_connection.cursor()
        cursor.execute(STAGE)
        cursor.copy_expert(f"COPY {TABLES['stage']} FROM STDIN", io.StringIO(copy_text(rows)))
        plan_scopes(cursor)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + APPLY_STAGE,
                       apply_params(pool.tick_clock()))
        plan = cursor.fetchone()[0][0]
        session.rollback()
    tables: list[dict] = []
    _walk(plan["Plan"], tables)
    keys = ("Shared Hit Blocks", "Shared Read Blocks", "Shared Dirtied Blocks",
            "Shared Written Blocks")
    top = plan["Plan"]
    return {
        "rows": len(rows),
        "execution_ms": round(plan["Execution Time"], 2),
        "total": {k.split()[1].lower(): top.get(k, 0) for k in keys},
        "tables": {
            node["Relation Name"]: {
                "ms": round(node["Actual Total Time"], 2),
                **{k.split()[1].lower(): node.get(k, 0) for k in keys},
            }
            for node in tables
        },
    }


def measure_reads(base: str, race: int, since: datetime, readers: int,
                  rounds: int) -> dict[str, dict[str, float]]:
    """Ask every endpoint `rounds` times from each of `readers` threads; return p50/p99 in ms."""
    import requests

    paths = [p.format(race=race, since=since.strftime("%Y-%m-%dT%H:%M:%SZ"))
             for p in ENDPOINTS]
    timings: dict[str, list[float]] = {path: [] for path in paths}
    errors: list[str] = []
    lock = threading.Lock()

    def read(offset: int):
        http = requests.Session()
        for path in paths:  # once each, untimed: connections and caches warm
            http.get(base + path, timeout=60)
        for n in range(rounds):
            for i in range(len(paths)):
                path = paths[(i + offset + n) % len(paths)]
                started = time.perf_counter()
                response = http.get(base + path, timeout=60)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if response.status_code != 200:
                        errors.append(f"{path}: {response.status_code}")
                    timings[path].append(elapsed)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"read endpoints failed: {errors[:3]}")
    names = dict(zip(paths, ENDPOINTS, strict=True))
    return {names[path]: {"p50": round(percentile(values, 50), 2),
                          "p99": round(percentile(values, 99), 2)}
            for path, values in timings.items()}


def _points(base: str, race: int, since: datetime) -> dict[str, int]:
    """Return how many points race's history has in all and since `since`: what reads cost."""
    import requests

    url = f"{base}/api/races/{race}/history"
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"all": len(requests.get(url, timeout=60).json()["points"]),
            "since": len(requests.get(url, params={"since": stamp}, timeout=60).json()["points"])}


def default_steps(rows: int) -> list[int]:
    return [0, rows // 10, rows // 4, rows // 2, rows]


def run_growth(settings: Settings, *, rows: int, steps: list[int], batch: int, units: int,
               apply_batches: int, readers: int, rounds: int, plot_dir: Path | None,
               wipe: bool, env: dict) -> dict:
    """Fill the history step by step and measure ingest and reads at each step."""
    database = db.prepare(settings.database_url)
    if database.dialect != "postgresql":
        raise BenchError("growth measures PostgreSQL: set ROME_DATABASE_URL to one")
    require_empty(database, wipe)
    empty = db.prepare(_sibling(settings.database_url, "_empty"))
    for each in (database, empty):
        truncate(each)
    steps = sorted({min(step, rows) for step in steps} | {rows})
    log_dir = settings.data_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    web = Web(env, log_dir / BENCH_LOG.format("growth-web"))
    results = []
    try:
        web.wait()
        pool, reference = Pool(database, units, batch), Pool(empty, units, batch)
        for step in steps:
            size = history_size(database)
            fill_rate = None
            if step > size["history_rows"]:
                sys.stderr.write(f"growth: filling the history to {step:,} rows\n")
                fill_rate = pool.fill(step - size["history_rows"])
            size = history_size(database)
            # The reference keeps the same pool over an empty history and series.
            truncate(empty, "history, series")
            measure_apply([pool, reference], 5, rounds=1)  # warm both, untimed: a cold
            # start (hint bits, first HOT updates after the fill) is not the history's doing
            (rate, empty_rate), (by_round, empty_by_round) = measure_apply(
                [pool, reference], apply_batches)
            plan, empty_plan = explain_apply(pool), explain_apply(reference)
            # A page polling for what changed in the night's last hour.
            since = pool.clock - timedelta(hours=1)
            reads = measure_reads(web.base, 1, since, readers, rounds)
            points = _points(web.base, 1, since)
            row = {**size, "apply_rows_per_s": round(rate),
                   "apply_rows_per_s_empty": round(empty_rate),
                   "apply/empty": round(rate / empty_rate, 3),
                   "apply_rounds": [round(r) for r in by_round],
                   "apply_rounds_empty": [round(r) for r in empty_by_round],
                   "fill_rows_per_s": round(fill_rate) if fill_rate else None,
                   "apply_plan": plan, "apply_plan_empty": empty_plan, "reads_ms": reads,
                   "history_points": points}
            results.append(row)
            sys.stderr.write(
                f"growth: {size['history_rows']:,} history rows, {size['series_rows']:,} "
                f"series rows: apply {round(rate):,} rows/s ({row['apply/empty']} of empty); "
                + " ".join(f"{e}={v['p50']}/{v['p99']}ms" for e, v in reads.items()) + "\n")
    finally:
        web.stop()
        database.engine.dispose()
        empty.engine.dispose()
    first, last = results[0], results[-1]
    result = {
        "mode": "growth",
        "database": database.dialect,
        "batch": batch,
        "units_per_source": units,
        "readers": readers,
        "steps": results,
        "apply_last/first": round(last["apply_rows_per_s"] / first["apply_rows_per_s"], 3),
        "apply/empty_last": last["apply/empty"],
        "reads_p50_last/first": {
            e: round(last["reads_ms"][e]["p50"] / max(first["reads_ms"][e]["p50"], 1e-9), 2)
            for e in ENDPOINTS
        },
    }
    if plot_dir is not None:
        from rome.bench.plots import plot_growth

        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_growth(results, plot_dir / "growth.png")
    return result
