"""`rome bench national`: a national night at real size through RabbitMQ and PostgreSQL.

For each size (AP answers of about 110,000 and 400,000 counts, made by
rome/feeds/national.py and rendered with Rome's AP renderer), and for a
Clarity state of 159 county precinct files (Georgia's shape, each county's
detail.xml rendered with Rome's Clarity renderer), a fresh night and then
versions with 1 % of the counts changed and one with none, each archived and
handed to the pipeline as the poller hands it: a claim check to notekeeper,
one for AP's answer, one per county zip whose version folder moved for
Clarity (rome/feeds/poll/clarity.py), all of a version published at once as
a poll cycle sends them. In one run, each a row:

- fetch to visible: from the first claim check's publish to every tally right;
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

import io
import json
import statistics
import sys
import time
import zipfile
from dataclasses import dataclass

from sqlalchemy import func, select, text

from rome.bench.common import (
    BenchError,
    Workers,
    publish_all,
    purge_queues,
    require_empty,
    wait_ready,
)
from rome.bench.ingest import apply_alone
from rome.data_files import BENCH_LOG
from rome.feeds.catalog import default_catalog
from rome.feeds.formats import render_feed
from rome.feeds.inject import Message
from rome.feeds.national import (
    CLARITY_COUNTIES,
    CLARITY_PRECINCTS,
    changed,
    clarity_changed,
    clarity_county_name,
    clarity_state,
    national,
)
from rome.feeds.poll.clarity import county_zip_url
from rome.feeds.snapshot import Snapshot
from rome.feeds.split import pack
from rome.ops import seam
from rome.settings import Settings
from rome.store import db
from rome.store.archive import (
    CLAIMS_PER_MESSAGE,
    Archive,
    claim_checks,
    parse_fetch,
    record_fetch,
)
from rome.store.models import RaceStatusRow, TallyRow
from rome.store.tally import copy_text, count_rows, record_snapshots
from rome.store.tally import wipeout as wipe_results

CAESAR_PROCESSES = 2
WRITTEN = ("SELECT count(*) FROM current_counts "
           "WHERE xmin::text = (txid_current() % 4294967296)::text")
AP_URL = "https://api.ap.org/v2/elections/2024-11-05"
CLARITY_SOURCE = "ga"  # the state's source: each county's races carry its name (scoped)
CLARITY_URL = "https://results.enr.clarityelections.com/GA/105369/"  # the state's base


@dataclass(frozen=True)
class Fetch:
    """One body as the poller archives it and sends it on: a claim check to notekeeper."""

    url: str
    format: str
    body: bytes  # as fetched and archived (a Clarity county's detailxml.zip)
    kind: str = "feed"
    version: str | None = None  # Clarity: the county's version folder
    scope: str | None = None  # Clarity: the county, as the state's list names it


@dataclass(frozen=True)
class Version:
    """One version of a night: what the poller hands over and what notekeeper makes of it."""

    version: int  # the version the races it names are at once applied
    fetches: list[Fetch]
    snapshots: list[Snapshot]  # the fetches' snapshots (scoped), as caesar gets them in parts
    votes: int  # the source's tallies' sum once applied: every count is in one tally
    races: int  # the source's races at `version` once applied
    counts_changed: int  # counts whose figure differs from the version before (all: fresh)


def _seen(database, source: str, version: int) -> tuple[int, int]:
    """(votes in source's tallies, source's races whose status is at version)."""
    with database.Session() as session:
        votes = session.scalar(select(func.coalesce(func.sum(TallyRow.votes), 0))
                               .where(TallyRow.source_id == source))
        races = session.scalar(select(func.count()).select_from(RaceStatusRow).where(
            RaceStatusRow.source_id == source, RaceStatusRow.version == version))
    return int(votes), int(races)


def _hand_over(database, archive: Archive, source: str, version: Version,
               timeout: float) -> float:
    """Archive version's fetches, publish their claim checks as the poller sends a cycle's
    on; return seconds from the first publish until every tally and status is right."""
    ids = []
    with database.Session.begin() as session:
        for fetch in version.fetches:
            ids.append(record_fetch(session, archive, source=source, fmt=fetch.format,
                                    url=fetch.url, status=200, body=fetch.body,
                                    fetched_at=time.time(), kind=fetch.kind,
                                    version=fetch.version, scope=fetch.scope))
    target = version.votes, version.races
    started = time.monotonic()
    publish_all([Message(source, claim, "archive", None, version.fetches[0].format)
                  for claim in claim_checks(ids)])
    deadline = started + timeout
    while _seen(database, source, version.version) != target:
        if time.monotonic() > deadline:
            raise BenchError(f"{source} version {version.version} not visible after "
                             f"{timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _changed(before: list[Snapshot], after: list[Snapshot]) -> int:
    """Counts of after whose figure is not before's."""
    old = {(n.race, n.unit, n.candidate, n.vote_type): n.votes for s in before for n in s.counts}
    return sum(old.get((n.race, n.unit, n.candidate, n.vote_type)) != n.votes
               for s in after for n in s.counts)


def ap_night(races_per_state: int, changed_versions: int) -> tuple[dict, list[Version]]:
    """A national AP answer, fresh, then 1 %-changed versions and an identical one."""
    fresh = national(races_per_state=races_per_state)
    snapshots = [fresh]
    for i in range(changed_versions):
        snapshots.append(changed(snapshots[-1], 0.01, seed=i + 1))
    snapshots.append(changed(snapshots[-1], 0.0, seed=0))  # the same figures, newer
    versions, file_bytes = [], 0
    for i, snapshot in enumerate(snapshots):
        body = render_feed("ap", snapshot)
        file_bytes = file_bytes or len(body)
        # Every count is at the state row and in its counties: each tally level sums them.
        versions.append(Version(
            snapshot.version, [Fetch(AP_URL, "ap", body)], [snapshot],
            sum(n.votes for n in snapshot.counts), len(snapshot.races),
            _changed(snapshots[i - 1:i], [snapshot]) if i else len(snapshot.counts)))
    return {"feed": "ap", "file_bytes": file_bytes}, versions


def clarity_night(counties: int, changed_versions: int) -> tuple[dict, list[Version]]:
    """A Clarity state's county files, fresh, then 1 %-changed versions and an identical one.

    As the poller takes a state election (rome/feeds/poll/clarity.py), a version
    hands over one zip per county whose version folder moved, each archived with
    its county as scope and sent on as its own claim check; notekeeper reads it
    as the county's scoped snapshot. A 1 %-changed version moves the counties it
    changes; the identical one republishes every county with the same figures.
    """
    files = clarity_state(counties, max(counties, round(CLARITY_PRECINCTS * counties
                                                        / CLARITY_COUNTIES)))
    states = [files]
    for i in range(changed_versions):
        states.append(clarity_changed(states[-1], 0.01, seed=i + 1))
    states.append(clarity_changed(states[-1], 0.0, seed=0, every=True))
    versions, file_bytes, largest_file = [], 0, 0
    for i, state in enumerate(states):
        moved = [(c, f) for c, f in enumerate(state) if i == 0 or f is not states[i - 1][c]]
        fetches, snapshots = [], []
        for c, county in moved:
            xml = render_feed("clarity", county)
            if i == 0:
                file_bytes += len(xml)
                largest_file = max(largest_file, len(xml))
            fetch = Fetch(county_zip_url(CLARITY_URL, clarity_county_name(c), str(100_000 + c),
                                         str(county.version)),
                          "clarity", _zipped(xml), "zip", str(county.version),
                          clarity_county_name(c))
            fetches.append(fetch)
            snapshots.append(parse_fetch(fetch, xml, CLARITY_SOURCE))
        before = [states[i - 1][c] for c, _ in moved] if i else []
        versions.append(Version(
            max(f.version for f in state), fetches, snapshots,
            sum(n.votes for f in state for n in f.counts),
            sum(len(s.races) for s in snapshots),
            # Unit keys name the county: the unscoped files compare as the scoped ones.
            _changed(before, [f for _, f in moved]) if i
            else sum(len(s.counts) for s in snapshots)))
    return {"feed": "clarity", "counties": counties,
            "precincts": sum(len(f.units) - 1 for f in files), "files": len(files),
            "file_bytes": file_bytes, "largest_file_bytes": largest_file}, versions


def _zipped(body: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("detail.xml", body)
    return out.getvalue()


def _batches(version: Version) -> list[list[Snapshot]]:
    """The messages notekeeper sends caesar for version's snapshots, each a batch of
    parts: its fetches go CLAIMS_PER_MESSAGE to a claim check, as the poller sends them."""
    snapshots = version.snapshots
    return [batch for at in range(0, len(snapshots), CLAIMS_PER_MESSAGE)
            for batch in pack(snapshots[at:at + CLAIMS_PER_MESSAGE])]


def _apply_in_process(database, versions: list[Version]) -> list[dict]:
    """Apply each version's batches in turn, as caesar would; time and rows written each."""
    with database.Session.begin() as session:
        wipe_results(session)
    out = []
    for version in versions:
        seconds, written = 0.0, 0
        for batch in _batches(version):
            with database.Session() as session:
                started = time.perf_counter()
                record_snapshots(session, batch)
                applied = time.perf_counter()
                # Counting the rows is a scan of current_counts: not the apply's time.
                written += session.execute(text(WRITTEN)).scalar_one()
                counted = time.perf_counter()
                session.commit()
                seconds += applied - started + time.perf_counter() - counted
        out.append({"seconds": seconds, "rows_written": written})
    return out


def _database_alone(database, parts: list[Snapshot], connections: int) -> float:
    """Rows per second for the parts' rows, pre-rendered, applied on scratch tables."""
    with database.Session.begin() as session:
        chunks = [copy_text(count_rows(session, [part], default_catalog())[0])
                  for part in parts]
    rows = sum(chunk.count("\n") for chunk in chunks)
    return rows / apply_alone(database, chunks, connections)


def _measure(database, archive: Archive, source: str, about: dict, versions: list[Version],
             env: dict, settings: Settings, timeout: float) -> dict:
    """Hand each version over to fresh workers, then apply them here: one row of figures."""
    batches = _batches(versions[0])
    parts = [part for batch in batches for part in batch]
    largest = max(len(json.dumps([p.to_wire() for p in batch], ensure_ascii=False))
                  for batch in batches)
    counts = sum(len(s.counts) for s in versions[0].snapshots)
    label = f"national {about['feed']} {counts}"
    specs = [("notekeeper", "notekeeper", 1), ("caesar", "caesar", CAESAR_PROCESSES)]
    workers = Workers(env, settings.data_dir / BENCH_LOG.format("national-worker"),
                      specs=specs)
    with database.Session.begin() as session:
        wipe_results(session)
    workers.start()
    try:
        # The publisher's app, built and the workers up before the clock starts.
        wait_ready(seam.celery_app(), [name for name, *_ in specs])
        visible = []
        for version in versions:
            visible.append(_hand_over(database, archive, source, version, timeout))
            sys.stderr.write(f"{label}: version visible after {visible[-1]:.2f} s\n")
    finally:
        workers.stop()
    applied = _apply_in_process(database, versions)
    ceiling = _database_alone(database, parts, CAESAR_PROCESSES)
    fresh_apply = applied[0]["seconds"]
    one_percent = [a["seconds"] for a in applied[1:-1]]
    row = {
        **about,
        "counts": counts,
        "fetches": [len(v.fetches) for v in versions],
        "messages_to_notekeeper": [-(-len(v.fetches) // CLAIMS_PER_MESSAGE) for v in versions],
        "messages_to_caesar": len(batches),
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
        "apply_ratio_1pct": (round(statistics.median(one_percent) / fresh_apply, 3)
                             if one_percent else None),
        "apply_ratio_identical": round(applied[-1]["seconds"] / fresh_apply, 3),
        "counts_changed": [v.counts_changed for v in versions],
        "rows_written": [a["rows_written"] for a in applied],
        "peak_rss_mb": {name: round(mb, 1) for name, mb in workers.rss_by_name.items()},
        "rome_counts_per_s": round(counts / visible[0]),
        "database_alone_rows_per_s": round(ceiling),
        "rome_over_database_alone": round(counts / visible[0] / ceiling, 2),
    }
    sys.stderr.write(f"{label}: {row}\n")
    return row


def run_national(settings: Settings, *, sizes: list[int], changed_versions: int, wipe: bool,
                 env: dict, clarity_counties: int = CLARITY_COUNTIES,
                 timeout: float = 300) -> dict:
    """Measure each AP size (races per state), then the Clarity state of clarity_counties
    county files (0: none), each fresh, then 1 %-changed versions and an identical one."""
    database = db.prepare(settings.database_url)
    if database.dialect != "postgresql" or not settings.amqp_broker:
        raise BenchError("national measures PostgreSQL and RabbitMQ: set ROME_DATABASE_URL "
                         "and ROME_BROKER_URL to them")
    require_empty(database, wipe)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(settings.archive_dir)
    purge_queues()
    nights = [("ap", lambda n=n: ap_night(n, changed_versions)) for n in sizes]
    if clarity_counties:
        nights.append((CLARITY_SOURCE, lambda: clarity_night(clarity_counties,
                                                             changed_versions)))
    results = []
    for source, night in nights:
        about, versions = night()
        results.append(_measure(database, archive, source, about, versions, env, settings,
                                timeout))
        del versions
    with database.Session.begin() as session:
        wipe_results(session)
    database.engine.dispose()
    return {"mode": "national", "caesar_processes": CAESAR_PROCESSES, "sizes": results}
