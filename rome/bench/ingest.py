"""`rome bench ingest` (or plain `rome bench`): ingest end to end against baselines, in one run.

Prints one JSON line at the end (and a progress line on a terminal):

- copy_rows_per_s: COPY of the same count rows into scratch copies of the
  result tables of the same PostgreSQL, with the same newest-wins upsert,
  history append and tally step: the ceiling.
- naive_updates_per_s: one Celery message per count, through notekeeper and
  caesar (Rome's own batch path, for batches of one).
- plain_updates_per_s: one Celery message per count to the task a Celery user
  would write first (workers/naive.py): an upsert where the version is newer
  and a tally upsert, per count, in its own transaction.
- rome_updates_per_s: Rome's batched path, counts published -> final state
  committed (every count's newest version applied).
- freshness_ms_p50 / p99: at a steady offered load, emit -> the message's
  version visible in GET /api/races.
- worker_rss_mb_max: peak resident memory of any worker process.
- signing: Rome's path and the naive one, measured first, in rounds (--signing-rounds,
  3 by default) each of signed workers and publishers then unsigned ones
  (ROME_MESSAGE_SIGNING=off, plain JSON): every figure, each round's signed /
  unsigned ratio and their median (measure_signing). The other figures are signed.
  --signing-only measures this alone.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from rome.bench.common import (
    PLAIN_TASK,
    BenchError,
    Web,
    Workers,
    bench_env,
    expected_tallies,
    parse_message,
    percentile,
    publish_all,
    purge_queues,
    require_empty,
    start_publishers,
    unsigned_env,
    wait_state,
)
from rome.data_files import BENCH_LOG
from rome.feeds.catalog import default_catalog
from rome.feeds.inject import Message, plan_stream
from rome.feeds.snapshot import TOTAL, Snapshot
from rome.ops import message_keys, seam
from rome.ops.progress import Progress
from rome.settings import Settings
from rome.store import db
from rome.store.tally import (
    apply_staged,
    copy_text,
    count_rows,
    record_snapshots,
    statements,
    wipeout,
)

# Threads publishing a baseline's one-count messages: one thread waiting for each
# confirm in turn would make the baselines measure the publisher, not the pipeline.
PUBLISHERS = 4


def measure_pipeline(database, plan: tuple[list[Message], dict], label: str,
                     timeout: float = 900, publishers: int = 1, signed: bool = True) -> float:
    """Publish a planned stream and return counts per second, published -> final state."""
    messages, expectation = plan
    counts = sum(m.counts for m in messages)
    with database.Session.begin() as session:
        wipeout(session)
    progress = Progress(counts)
    sys.stderr.write(f"{label}: {counts} counts in {len(messages)} messages\n")
    started = time.monotonic()
    threads = start_publishers(lambda m: publish_all([m], signed), messages, publishers)
    done = wait_state(database, expected_tallies(expectation), timeout, progress)
    for thread in threads:
        thread.join()
    progress.update(counts, final=True)
    return counts / (done - started)


# -- the COPY ceiling ----------------------------------------------------------

SCRATCH_TABLES = {"current": "bench_current", "history": "bench_history",
                  "tallies": "bench_tallies", "series": "bench_series", "stage": "bench_stage",
                  "total": TOTAL, "scopes": "bench_scopes", "plan": "bench_plan"}
SCRATCH = """
DROP TABLE IF EXISTS bench_current, bench_history, bench_tallies, bench_series, bench_scopes;
CREATE TABLE bench_scopes (LIKE count_scopes INCLUDING ALL);
CREATE TABLE bench_current (LIKE current_counts INCLUDING ALL);
CREATE TABLE bench_history (LIKE history INCLUDING ALL);
CREATE TABLE bench_tallies (LIKE tallies INCLUDING ALL);
CREATE TABLE bench_series (LIKE series INCLUDING ALL);
"""


def _count_rows(database, messages: list[Message]) -> list[list[tuple]]:
    """Resolve each message's counts to the rows Rome's path would write."""
    with database.Session.begin() as session:
        return [count_rows(session, [parse_message(m)], default_catalog())[0]
                for m in messages]


def _copy_text(database, messages: list[Message]) -> list[str]:
    """Render each message's counts as COPY text."""
    return [copy_text(rows) for rows in _count_rows(database, messages)]


def measure_plain(database, plan: tuple[list[Message], dict], timeout: float = 900) -> float:
    """Publish one message per count to the plain task; return counts per second, published ->
    final state. Ids are resolved beforehand: the baseline pays neither parsing nor lookups."""
    messages, expectation = plan
    rows = [row for rows in _count_rows(database, messages) for row in rows]
    with database.Session.begin() as session:
        wipeout(session)
    progress = Progress(len(rows))
    sys.stderr.write(f"plain: {len(rows)} counts, one task each\n")

    started = time.monotonic()
    threads = start_publishers(
        lambda row: seam.celery_app().send_task(PLAIN_TASK, args=list(row), queue="caesar"), rows,
        PUBLISHERS)
    done = wait_state(database, expected_tallies(expectation), timeout, progress)
    for thread in threads:
        thread.join()
    progress.update(len(rows), final=True)
    return len(rows) / (done - started)


def apply_alone(database, chunks: list[str], connections: int) -> float:
    """Stage and apply each chunk of COPY text, one transaction each, on scratch tables with
    Rome's own statements, from `connections` connections at once; return the seconds."""
    raw = database.engine.raw_connection()
    try:
        raw.cursor().execute(SCRATCH)
        raw.commit()
    finally:
        raw.close()
    sql = statements(SCRATCH_TABLES)
    errors: list[BaseException] = []

    def run(mine: list[str]) -> None:
        conn = database.engine.raw_connection()
        try:
            cursor = conn.cursor()
            for chunk in mine:
                cursor.execute(sql["stage"])
                cursor.copy_expert(f"COPY {SCRATCH_TABLES['stage']} FROM STDIN",
                                   io.StringIO(chunk))
                apply_staged(cursor, sql=sql)
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(chunks[i::connections],))
               for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT count(*) FROM bench_history")
        applied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_current, bench_history, bench_tallies, bench_series, "
                       "bench_scopes")
        raw.commit()
    finally:
        raw.close()
    if errors:
        raise BenchError(f"the database-alone apply failed: {errors[0]!r}")
    if not applied:
        raise BenchError("the database-alone apply applied nothing")
    return elapsed


def measure_copy(database, messages: list[Message], updates: int,
                 connections: int = 1) -> float | None:
    """The database alone: each message's rows, pre-rendered, staged and applied on scratch
    tables from `connections` connections (as many as caesar has processes); updates/s."""
    if database.dialect != "postgresql":
        return None
    chunks = _copy_text(database, messages)  # parsing and ids are not part of the ceiling
    return updates / apply_alone(database, chunks, connections)


# -- where the time goes --------------------------------------------------------

def measure_stages(database, messages: list[Message]) -> dict[str, float]:
    """Time each step one batch takes in the workers, in microseconds per count (medians)."""
    stages: dict[str, list[float]] = {k: [] for k in
                                      ("normalize", "encode", "sign", "decode", "apply")}
    ring = message_keys.Keyring((message_keys.new_key(),))
    with database.Session.begin() as session:
        wipeout(session)
    for message in messages[:20]:
        t0 = time.perf_counter()
        snapshot = parse_message(message)
        t1 = time.perf_counter()
        wire = json.dumps([snapshot.to_wire()])
        t2 = time.perf_counter()
        # What signing adds: the HMAC of the sender and the check of the receiver.
        body = message_keys.open_signed(ring.sign(wire.encode()), ring.secret)
        t3 = time.perf_counter()
        decoded = [Snapshot.from_wire(item) for item in json.loads(body)]
        t4 = time.perf_counter()
        with database.Session.begin() as session:
            record_snapshots(session, decoded)
        t5 = time.perf_counter()
        n = len(snapshot.counts)
        for key, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                                strict=True):
            stages[key].append(seconds * 1e6 / n)
    return {key: round(statistics.median(values), 2) for key, values in stages.items()}


# -- freshness -------------------------------------------------------------------

def measure_freshness(database, env: dict, seconds: float, rate: float, batch: int,
                      log_path: Path) -> list[float]:
    """Offer rate counts/s for seconds; return emit -> visible delays in ms.

    A message counts as visible at the first poll of GET /api/races that
    shows its source at its version (or newer) for its race.
    """
    import requests

    with database.Session.begin() as session:
        wipeout(session)
    web = Web(env, log_path)
    url = f"{web.base}/api/races"
    http = requests.Session()
    try:
        web.wait()
        updates = int(seconds * rate)
        messages, expectation = plan_stream(updates, batch=batch, seed="freshness",
                                            start=int(time.time()), top=False)
        emitted: list[tuple[float, str, int]] = []  # (time, source, version)
        seen: list[tuple[float, dict[str, int]]] = []  # (time, {source: newest version})
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                races = http.get(url, timeout=5).json()["races"]
                versions: dict[str, int] = {}
                for source in (s for r in races for s in r["sources"]):
                    versions[source["id"]] = max(versions.get(source["id"], 0),
                                                 source["version"] or 0)
                seen.append((time.monotonic(), versions))
                time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started, total = time.monotonic(), 0
        progress = Progress(updates)
        for message in messages:
            at = time.monotonic()
            if not seam.publish_confirmed(message):
                raise BenchError("the broker did not confirm a message")
            total += message.counts
            emitted.append((at, message.source, message.feed_version))
            progress.update(total)
            ahead = total / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        progress.update(total, final=True)
        wait_state(database, expected_tallies(expectation), 120)
        time.sleep(0.1)
        stop.set()
        poller.join(10)
    finally:
        web.stop()
    delays = []
    for at, source, version in emitted:
        shown = next((t for t, versions in seen
                      if t >= at and versions.get(source, 0) >= version), None)
        if shown is None:
            raise BenchError("a message never became visible")
        delays.append((shown - at) * 1000)
    return delays


def measure_signing(database, env: dict, log_path: Path, concurrency: int, plan, naive_plan,
                    batch: int, rounds: int) -> dict:
    """Measure Rome's and the naive path signed and unsigned, in alternating rounds.

    Each round starts workers as Rome runs them (signed) and measures both
    paths after a warm-up, then the same with workers run with
    ROME_MESSAGE_SIGNING=off and plain JSON published. On a shared machine the
    load drifts over minutes: the ratio of each round's adjacent pair, and
    their median, says more than one signed run against one unsigned run later.
    """
    warm_up = plan_stream(min(sum(m.counts for m in plan[0]), 12 * batch), batch=batch,
                          seed="warm-up", start=1, top=False)
    figures: dict[str, list[float]] = {"rome_signed": [], "rome_unsigned": [],
                                       "naive_signed": [], "naive_unsigned": []}
    rss = 0.0
    for round_ in range(rounds):
        for signed in (True, False):
            kind = "signed" if signed else "unsigned"
            workers = Workers(env if signed else unsigned_env(env), log_path, concurrency)
            workers.start()
            try:
                time.sleep(3)  # let the worker connect before the clock starts
                label = f"round {round_ + 1} {kind}"
                measure_pipeline(database, warm_up, f"{label} warm-up", signed=signed)
                figures[f"rome_{kind}"].append(measure_pipeline(
                    database, plan, f"{label} rome batch={batch}", signed=signed))
                figures[f"naive_{kind}"].append(measure_pipeline(
                    database, naive_plan, f"{label} naive", publishers=PUBLISHERS,
                    signed=signed))
            finally:
                workers.stop()
                rss = max(rss, workers.rss_max_mb)
        sys.stderr.write(f"round {round_ + 1}: " + json.dumps(
            {key: round(values[-1]) for key, values in figures.items()}) + "\n")
    result: dict = {key: [round(v) for v in values] for key, values in figures.items()}
    for path in ("rome", "naive"):
        ratios = [s / u for s, u in zip(figures[f"{path}_signed"], figures[f"{path}_unsigned"],
                                        strict=True)]
        result[f"{path}_signed/unsigned"] = [round(r, 3) for r in ratios]
        result[f"{path}_signed/unsigned_median"] = round(statistics.median(ratios), 3)
    result["worker_rss_mb_max"] = round(rss, 1)
    return result


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


# -- the whole run ---------------------------------------------------------------

def run_ingest(settings: Settings, *, updates: int, naive_updates: int, batch: int,
              sweep: list[int], freshness_seconds: float, freshness_rate: float,
              freshness_batch: int, concurrency: int, plot_dir: Path | None,
              wipe: bool, signing_rounds: int = 3, signing_only: bool = False) -> dict:
    """Run every measurement in one go and return the figures."""
    database = db.prepare(settings.database_url)
    require_empty(database, wipe)
    env = bench_env()
    log_dir = settings.data_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    purge_queues()
    seed = {"seed": "bench", "start": 1, "top": False}
    plan = plan_stream(updates, batch=batch, **seed)
    naive_plan = plan_stream(naive_updates, batch=1, **seed)
    head = {"broker": settings.broker_url.split("://")[0], "database": database.dialect,
            "updates": updates, "batch": batch, "naive_updates": naive_updates,
            "worker_concurrency": concurrency}
    signing = None
    if settings.message_signing and (signing_rounds or signing_only):
        try:
            signing = measure_signing(database, env, log_dir / BENCH_LOG.format("worker"),
                                      concurrency, plan, naive_plan, batch,
                                      max(1, signing_rounds))
        finally:
            with database.Session.begin() as session:
                wipeout(session)
    if signing_only:
        return {**head, "signing": signing}
    workers = Workers(env, log_dir / BENCH_LOG.format("worker"), concurrency)
    workers.start()
    try:
        time.sleep(3)  # let the worker connect before the clock starts
        copy = measure_copy(database, plan[0], updates, concurrency)
        stages = measure_stages(database, plan[0])
        # Untimed: each pool process's first messages pay for imports, schemas and
        # connections (the first timed run read 34,053/s, the sweep's 49,997 later).
        measure_pipeline(database, plan_stream(min(updates, 12 * batch), batch=batch,
                                               seed="warm-up", start=1, top=False), "warm-up")
        rome = measure_pipeline(database, plan, f"rome batch={batch}")
        naive = measure_pipeline(database, naive_plan, "naive", publishers=PUBLISHERS)
        plain = measure_plain(database, naive_plan)
        by_batch = []
        for size in sweep:
            n = min(updates, max(size * 40, 2000))
            sized = plan_stream(n, batch=size, **seed)
            by_batch.append({
                "batch": size,
                "copy_rows_per_s": _round(measure_copy(database, sized[0], n, concurrency)),
                "rome_updates_per_s": _round(
                    measure_pipeline(database, sized, f"sweep batch={size}")),
            })
        delays = measure_freshness(database, env, freshness_seconds, freshness_rate,
                                   freshness_batch, log_dir / BENCH_LOG.format("web"))
    finally:
        workers.stop()
        with database.Session.begin() as session:
            wipeout(session)
    result = {
        **head,
        "copy_rows_per_s": round(copy) if copy else None,
        "naive_updates_per_s": round(naive),
        "plain_updates_per_s": round(plain),
        "rome_updates_per_s": round(rome),
        "freshness_rate_per_s": freshness_rate,
        "freshness_ms_p50": round(percentile(delays, 50), 1),
        "freshness_ms_p99": round(percentile(delays, 99), 1),
        "freshness_ms_mean": round(statistics.fmean(delays), 1),
        "worker_rss_mb_max": round(workers.rss_max_mb, 1),
        "rome/naive": round(rome / naive, 1),
        "rome/plain": round(rome / plain, 1),
        "rome/copy": round(rome / copy, 3) if copy else None,
        "stage_us_per_update": stages,
        "by_batch": by_batch,
        # None when ROME_MESSAGE_SIGNING=off: nothing signed to compare.
        "signing": signing,
    }
    if plot_dir is not None:
        from rome.bench.plots import plot_batches, plot_freshness

        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_batches(by_batch, naive, plot_dir / "throughput-by-batch.png")
        plot_freshness(delays, freshness_rate, plot_dir / "freshness.png")
    return result
