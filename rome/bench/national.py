"""`rome bench national`: a national night at real size through RabbitMQ and PostgreSQL.

For each size (AP answers of about 110,000 and 400,000 counts, made by
rome/feeds/national.py and rendered with Rome's AP renderer), a fresh night
and then versions with 1 % of the counts changed and one with none, each
archived and handed to the pipeline as the poller hands it (a claim check):

- fetch to visible: from the claim check's publish to every tally right;
- apply cost: the same versions applied in this process with Rome's own
  record_snapshots, part by part as caesar gets them, each version's time
  against the fresh one's, and the rows each wrote in current_counts (by
  xmin), the figure the scopes of issue 20 are for;
- peak RSS of each worker process, and the largest message caesar is sent
  (a part's wire JSON, as notekeeper publishes it);
- the database alone: the same rows, pre-rendered, staged and applied with
  the same statements on scratch tables on as many connections as caesar has
  processes, against Rome's own counts per second end to end.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from sqlalchemy import func, select, text

from rome.bench.common import BenchError, Workers, publish_all, purge_queues, require_empty
from rome.bench.ingest import apply_alone
from rome.data_files import BENCH_LOG
from rome.feeds.catalog import default_catalog
from rome.feeds.formats import render_feed
from rome.feeds.inject import Message
from rome.feeds.national import changed, national
from rome.feeds.snapshot import Snapshot
from rome.feeds.split import split
from rome.ops import seam
from rome.settings import Settings
from rome.store import db
from rome.store.archive import Archive, record_fetch
from rome.store.models import RaceStatusRow, TallyRow
from rome.store.tally import copy_text, count_rows, record_snapshots
from rome.store.tally import wipeout as wipe_results

CAESAR_PROCESSES = 2
WRITTEN = ("SELECT count(*) FROM current_counts "
           "WHERE xmin::text = (txid_current() % 4294967296)::text")


def _seen(database, version: int) -> tuple[int, int]:
    """(votes in ap's tallies, ap's races whose status is at version)."""
    with database.Session() as session:
        votes = session.scalar(select(func.coalesce(func.sum(TallyRow.votes), 0))
                               .where(TallyRow.source_id == "ap"))
        races = session.scalar(select(func.count()).select_from(RaceStatusRow).where(
            RaceStatusRow.source_id == "ap", RaceStatusRow.version == version))
    return int(votes), int(races)


def _hand_over(database, archive: Archive, snapshot: Snapshot, timeout: float) -> float:
    """Archive snapshot's AP file, publish its claim check; return seconds until visible."""
    body = render_feed("ap", snapshot)
    with database.Session.begin() as session:
        archive_id = record_fetch(session, archive, source="ap", fmt="ap",
                                  url="https://api.ap.org/v2/elections/2024-11-05", status=200,
                                  body=body, fetched_at=time.time(), kind="feed")
    # Every count is at the state row and in its counties: each tally level sums them.
    target = sum(n.votes for n in snapshot.counts), len(snapshot.races)
    started = time.monotonic()
    publish_all([Message("ap", str(archive_id), "archive", None, "ap")])
    deadline = started + timeout
    while _seen(database, snapshot.version) != target:
        if time.monotonic() > deadline:
            raise BenchError(f"version {snapshot.version} not visible after {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _apply_in_process(database, versions: list[Snapshot]) -> list[dict]:
    """Apply each version's parts in turn, as caesar would; time and rows written each."""
    with database.Session.begin() as session:
        wipe_results(session)
    out = []
    for snapshot in versions:
        parts = split(snapshot)
        started, written = time.perf_counter(), 0
        for part in parts:
            with database.Session.begin() as session:
                record_snapshots(session, [part])
                written += session.execute(text(WRITTEN)).scalar_one()
        out.append({"seconds": time.perf_counter() - started, "rows_written": written})
    return out


def _database_alone(database, snapshot: Snapshot, connections: int) -> float:
    """Rows per second for the parts' rows, pre-rendered, applied on scratch tables."""
    with database.Session.begin() as session:
        chunks = [copy_text(count_rows(session, [part], default_catalog())[0])
                  for part in split(snapshot)]
    rows = sum(chunk.count("\n") for chunk in chunks)
    return rows / apply_alone(database, chunks, connections)


def run_national(settings: Settings, *, sizes: list[int], changed_versions: int, wipe: bool,
                 env: dict, timeout: float = 300) -> dict:
    """Measure each size (races per state) fresh, then 1 %-changed versions and an identical one."""
    database = db.prepare(settings.database_url)
    if database.dialect != "postgresql" or not settings.amqp_broker:
        raise BenchError("national measures PostgreSQL and RabbitMQ: set ROME_DATABASE_URL "
                         "and ROME_BROKER_URL to them")
    require_empty(database, wipe)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(settings.archive_dir)
    purge_queues()
    specs = [("notekeeper", "notekeeper", 1), ("caesar", "caesar", CAESAR_PROCESSES)]
    results = []
    for races_per_state in sizes:
        fresh = national(races_per_state=races_per_state)
        versions = [fresh]
        for i in range(changed_versions):
            versions.append(changed(versions[-1], 0.01, seed=i + 1))
        versions.append(changed(versions[-1], 0.0, seed=0))  # the same figures, newer
        parts = split(fresh)
        largest = max(len(json.dumps([p.to_wire()], ensure_ascii=False)) for p in parts)
        workers = Workers(env, settings.data_dir / BENCH_LOG.format("national-worker"),
                          specs=specs)
        with database.Session.begin() as session:
            wipe_results(session)
        workers.start()
        try:
            seam.celery_app()  # the publisher's app, built before the clock starts
            visible = []
            for snapshot in versions:
                visible.append(_hand_over(database, archive, snapshot, timeout))
                sys.stderr.write(f"national {len(fresh.counts)}: version visible after "
                                 f"{visible[-1]:.2f} s\n")
        finally:
            workers.stop()
        applied = _apply_in_process(database, versions)
        ceiling = _database_alone(database, fresh, CAESAR_PROCESSES)
        fresh_apply = applied[0]["seconds"]
        one_percent = [a["seconds"] for a in applied[1:-1]]
        results.append({
            "counts": len(fresh.counts),
            "file_bytes": len(render_feed("ap", fresh)),
            "parts": len(parts),
            "largest_message_bytes": largest,
            "fetch_to_visible_s": {
                "fresh": round(visible[0], 2),
                "changed_1pct": [round(v, 2) for v in visible[1:-1]],
                "identical": round(visible[-1], 2),
            },
            "apply_s": {"fresh": round(fresh_apply, 3),
                        "changed_1pct": [round(s, 3) for s in one_percent],
                        "identical": round(applied[-1]["seconds"], 3)},
            "apply_ratio_1pct": round(statistics.median(one_percent) / fresh_apply, 3),
            "apply_ratio_identical": round(applied[-1]["seconds"] / fresh_apply, 3),
            "rows_written": [a["rows_written"] for a in applied],
            "peak_rss_mb": {name: round(mb, 1) for name, mb in workers.rss_by_name.items()},
            "rome_counts_per_s": round(len(fresh.counts) / visible[0]),
            "database_alone_rows_per_s": round(ceiling),
            "rome_over_database_alone": round(len(fresh.counts) / visible[0] / ceiling, 2),
        })
        sys.stderr.write(f"national: {results[-1]}\n")
    with database.Session.begin() as session:
        wipe_results(session)
    database.engine.dispose()
    return {"mode": "national", "caesar_processes": CAESAR_PROCESSES, "sizes": results}
