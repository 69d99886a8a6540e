"""`rome bench probe`: what ingest and history reads cost on a database `rome bench growth` filled.

Each probe prints its figures as one JSON line (docs/benchmarks.md quotes them):

    rome bench probe history URL     # race_history the old way (a sum) and the new
    rome bench probe index URL       # the apply with and without history_race_applied
    rome bench probe fillfactor URL  # current_counts' size and HOT share by fillfactor
    rome bench probe keys URL        # current_counts' upsert keyed by text or smallint

`history` and `index` read the filled database and leave it as they found it
(`index` creates the old index and drops it again); `fillfactor` TRUNCATEs the
result tables of the database it is given, so give it a scratch one (the
bench's `_empty` sibling); `keys` works on scratch tables it drops.
"""

from __future__ import annotations

import io
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg2
from sqlalchemy import text

from rome.bench.growth import Pool, explain_apply, measure_apply, truncate
from rome.bench.old_history import old_race_history
from rome.read.history import race_history
from rome.store import db


def _autocommit(database, sql: str):
    with database.engine.connect() as connection:
        result = connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))
        return result.fetchall() if result.returns_rows else None


def _pool(database) -> Pool:
    pool = Pool(database, 1000, 2000)
    pool.tick = 10**7  # newer than anything the bench applied: every row is a change
    return pool


def probe_history(database) -> dict:
    """Time race 1's history both ways (the old way with its index back), check they agree."""
    _autocommit(database, "CREATE INDEX IF NOT EXISTS history_race_applied "
                          "ON history (race_id, applied_at)")
    try:
        since = datetime.now(UTC) - timedelta(minutes=5)
        found = {}
        with database.Session() as session:
            for name, read, runs in (("old", old_race_history, 3), ("new", race_history, 30)):
                for label, moment in (("full", None), ("since", since)):
                    times = []
                    for _ in range(runs):
                        started = time.perf_counter()
                        read(session, 1, moment)
                        times.append((time.perf_counter() - started) * 1000)
                    found[f"{name}_{label}_ms"] = round(statistics.median(times), 1)
            found["same_answers"] = all(
                old_race_history(session, 1, m).to_json() == race_history(session, 1, m).to_json()
                for m in (None, since))
    finally:
        _autocommit(database, "DROP INDEX IF EXISTS history_race_applied")
    found["history_rows"] = _autocommit(database, "SELECT max(id) FROM history")[0][0]
    return found


def probe_index(database, rounds: int = 8) -> dict:
    """EXPLAIN one batch's apply with and without the old index by race, in turn."""
    pool, found = _pool(database), {"with": [], "without": []}
    try:
        for _ in range(rounds):
            for state in ("with", "without"):
                if state == "with":
                    _autocommit(database, "CREATE INDEX history_race_applied "
                                          "ON history (race_id, applied_at)")
                plan = explain_apply(pool)
                if state == "with":
                    _autocommit(database, "DROP INDEX history_race_applied")
                found[state].append((plan["tables"]["history"], plan["execution_ms"]))
    finally:
        _autocommit(database, "DROP INDEX IF EXISTS history_race_applied")
    return {state: {"history_ms": statistics.median(t["ms"] for t, _ in runs),
                    "history_hit": statistics.median(t["hit"] for t, _ in runs),
                    "history_read": statistics.median(t["read"] for t, _ in runs),
                    "statement_ms": statistics.median(ms for _, ms in runs)}
            for state, runs in found.items()}


def probe_fillfactor(database, rows: int = 2_000_000) -> dict:
    """Fill `rows` changes at each fillfactor; report current_counts' size and HOT share."""
    found = {}
    for fillfactor in (100, 70):
        truncate(database)
        _autocommit(database, f"ALTER TABLE current_counts SET (fillfactor = {fillfactor})")
        _autocommit(database, "SELECT pg_stat_reset_single_table_counters("
                              "'current_counts'::regclass)")
        pool = Pool(database, 1000, 2000)
        pool.fill(rows)
        (rate,), _ = measure_apply([pool], 10)
        time.sleep(1)  # statistics reach pg_stat_user_tables within a second
        size, index, updates, hot = _autocommit(database, """
            SELECT pg_relation_size('current_counts'), pg_relation_size('current_counts_pkey'),
                   n_tup_upd, n_tup_hot_upd
            FROM pg_stat_user_tables WHERE relname = 'current_counts'""")[0]
        found[fillfactor] = {"heap_kb": size // 1024, "pkey_kb": index // 1024,
                             "updates": updates, "hot_percent": round(100 * hot / updates, 1),
                             "apply_rows_per_s": round(rate)}
    _autocommit(database, "ALTER TABLE current_counts SET (fillfactor = 70)")
    return found


def probe_keys(url: str, rounds: int = 60) -> dict:
    """Upsert 2,000 of the pool's keys into copies of current_counts keyed by text or by
    smallint, in turn; return each one's median execution time (ms)."""
    conn = psycopg2.connect(db.driver_url(url).replace("postgresql+psycopg2", "postgresql"))
    conn.autocommit = True
    cursor = conn.cursor()
    cursor.execute("SELECT race_id, source_id, unit_id, candidate_id, vote_type, rank, votes "
                   "FROM current_counts")
    keys = cursor.fetchall()
    codes = {value: n for n, value in enumerate(sorted({k[1] for k in keys} |
                                                       {k[4] for k in keys}), 1)}
    kinds = {"text": ("text", str), "smallint": ("smallint", codes.get)}
    for name, (sql_type, _) in kinds.items():
        cursor.execute(f"""
            DROP TABLE IF EXISTS probe_{name}, probe_stage_{name};
            CREATE TABLE probe_{name} (race_id int, source_id {sql_type}, unit_id int,
                candidate_id int, vote_type {sql_type}, rank smallint, votes bigint,
                prev_votes bigint, version bigint,
                PRIMARY KEY (race_id, source_id, unit_id, candidate_id, vote_type))
                WITH (fillfactor = 70);
            CREATE TABLE probe_stage_{name} (race_id int, source_id {sql_type}, unit_id int,
                candidate_id int, vote_type {sql_type}, rank smallint, votes bigint,
                version bigint)""")
    rng, times = random.Random(1), {name: [] for name in kinds}
    try:
        for version in range(rounds + 1):
            sample = keys if version == 0 else sorted(rng.sample(keys, min(2000, len(keys))))
            for name in rng.sample(list(kinds), len(kinds)):
                code = kinds[name][1]
                cursor.execute(f"TRUNCATE probe_stage_{name}")
                cursor.copy_expert(f"COPY probe_stage_{name} FROM STDIN", io.StringIO("".join(
                    f"{k[0]}\t{code(k[1])}\t{k[2]}\t{k[3]}\t{code(k[4])}\t{k[5]}\t"
                    f"{k[6] + version}\t{version}\n" for k in sample)))
                cursor.execute(f"""
                    EXPLAIN (ANALYZE, FORMAT JSON)
                    INSERT INTO probe_{name} AS c
                    SELECT race_id, source_id, unit_id, candidate_id, vote_type, rank, votes,
                           NULL, version
                    FROM probe_stage_{name}
                    ORDER BY race_id, source_id, unit_id, candidate_id, vote_type
                    ON CONFLICT (race_id, source_id, unit_id, candidate_id, vote_type)
                    DO UPDATE SET prev_votes = c.votes, votes = excluded.votes,
                                  version = excluded.version
                    WHERE (c.version, c.votes) < (excluded.version, excluded.votes)""")
                if version:  # the first round only loads the table
                    times[name].append(cursor.fetchone()[0][0]["Execution Time"])
    finally:
        for name in kinds:
            cursor.execute(f"DROP TABLE IF EXISTS probe_{name}, probe_stage_{name}")
        conn.close()
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def run_probe(probe: str, url: str) -> dict:
    """Run one probe on the database at url and return its figures, keyed by its name."""
    if probe == "keys":
        return {"keys_upsert_ms": probe_keys(url)}
    database = db.connect(url)
    try:
        run = {"history": probe_history, "index": probe_index, "fillfactor": probe_fillfactor}
        return {probe: run[probe](database)}
    finally:
        database.engine.dispose()
