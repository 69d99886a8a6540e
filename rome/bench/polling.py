"""`rome bench polling`: a whole night polled from the feed server through the real pipeline.

Starts the feed server (rome/feeds/feedserver.py) in this process, serving the
simulated night (AP's API, a Clarity county, a NIST report; its length set by
--minutes, rome/feeds/feedsim.py) or recorded files moving through their
versions (rome/feeds/feednight.py); writes a sources file naming its feeds;
runs beat and the workers as Rome runs them (`celery -A workers beat`, a poll
worker, a notekeeper and caesar worker) on the broker and database of the
settings (RabbitMQ and PostgreSQL with ROME_BROKER_URL and ROME_DATABASE_URL;
the embedded ones otherwise); lets the night run to its end, then drains.

Then, per source, from the feed server's request log and what the pipeline
stored: requests in the busiest 60 s and the mean per minute, against the
source's requests_per_minute; polls by outcome; answers that brought nothing
new (AP answers with no races, Clarity `current_ver.txt` unchanged, NIST 304s);
and poll-to-visible latency for every answer sent on over the whole night,
from the fetch (the archive row's time) to the first commit of that answer's
counts (the history's `applied_at`): p50, p99 and max.

A benchmark, not a test: it asserts nothing and talks only to 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, select

from rome.bench.common import CELERY, BenchError, Workers, percentile, purge_queues, require_empty
from rome.feeds.feedserver import FeedServer
from rome.feeds.snapshot import InvalidPayload
from rome.feeds.sources_file import DEFAULT_REQUESTS_PER_MINUTE
from rome.store import db
from rome.store.archive import Archive, fetches, snapshot_of
from rome.store.models import ArchiveRow, HistoryRow, PollStateRow
from rome.store.tally import wipeout

WINDOW = 60.0  # seconds: the span requests_per_minute limits
FORMAT_PREFIX = {"ap": "/ap/", "clarity": "/clarity/", "nist": "/nist/"}


# --- the arithmetic (tests/unit/bench/test_polling_bench.py) ------------------------------


def max_in_window(times: list[float], window: float = WINDOW) -> int:
    """The most requests in any span of `window` seconds: [t, t + window) for every t."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def mean_per_minute(count: int, seconds: float) -> float:
    """Requests per minute on average over `seconds`."""
    return count * 60.0 / seconds if seconds > 0 else 0.0


def latency_summary(seconds: list[float]) -> dict:
    """n, p50, p99 and max of latencies in seconds, as milliseconds (nearest rank)."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(seconds), "p50_ms": round(percentile(seconds, 50) * 1000, 1),
            "p99_ms": round(percentile(seconds, 99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1)}


def unchanged_versions(bodies: list[str]) -> int:
    """How many of a Clarity source's `current_ver.txt` answers (sha256s, in fetch order)
    repeat the answer before them: polls that found nothing new."""
    return sum(1 for before, now in zip(bodies, bodies[1:], strict=False) if before == now)


def first_visible(fetched: list[tuple[int, float]],
                  applied: dict[int, float]) -> list[float]:
    """Poll-to-visible latencies: for each version's first fetch (version, fetch time), the
    time its counts were first committed minus the fetch time; versions never applied (an
    answer that changed no count) are left out."""
    first_fetch: dict[int, float] = {}
    for version, at in fetched:
        first_fetch[version] = min(at, first_fetch.get(version, at))
    return [applied[v] - at for v, at in first_fetch.items() if v in applied]


def source_of_path(path: str, sources: list[dict]) -> str | None:
    """The source a request to the feed server belongs to: the one of that path's format."""
    for source in sources:
        if path.startswith(FORMAT_PREFIX[source["format"]]):
            return source["id"]
    return None


# --- running the night ----------------------------------------------------------------------


def _utc(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def sources_file(server: FeedServer, poll_interval: float, ap_rpm: int | None) -> list[dict]:
    """The sources the bench polls: one per feed served, one feed per format at most."""
    sources = []
    for feed in server.feeds():
        if any(s["format"] == feed["format"] for s in sources):
            raise BenchError(f"one feed per format: {feed['format']} has more than one")
        rpm = DEFAULT_REQUESTS_PER_MINUTE[feed["format"]]
        if feed["format"] == "ap" and ap_rpm:
            rpm = ap_rpm
        sources.append({**feed, "interval": poll_interval, "requests_per_minute": rpm})
    return sources


def write_sources(path: Path, sources: list[dict]) -> None:
    lines = []
    for source in sources:
        lines += ["[[source]]"] + [f"{key} = {json.dumps(source[key])}" for key in
                                   ("id", "format", "url", "name", "interval",
                                    "requests_per_minute")] + [""]
    path.write_text("\n".join(lines))


def _clear(database: db.Database, ids: list[str], wipe: bool) -> None:
    """What an earlier run left of these sources (their poll state would point the polls at
    an old server); the results too with --wipe (require_empty refused without it)."""
    with database.Session.begin() as session:
        if wipe:
            wipeout(session)
        session.execute(delete(PollStateRow).where(PollStateRow.source_id.in_(ids)))
        session.execute(delete(ArchiveRow).where(ArchiveRow.source_id.in_(ids)))


def run_polling(settings, *, minutes: float, tick: float, poll_interval: float,
                ap_rpm: int | None, wipe: bool, env: dict, ap=(), clarity=(), nist=(),
                steps: int = 4, drain_seconds: float = 120.0) -> dict:
    """Poll one night from the feed server through the pipeline; return the figures."""
    recorded = bool(ap or clarity or nist)
    night = minutes * 60.0
    database = db.prepare(settings.database_url)
    require_empty(database, wipe)
    folder = Path(tempfile.mkdtemp(prefix="rome-bench-polling-"))
    server = FeedServer(ap=list(ap), clarity=list(clarity), nist=list(nist),
                        simulated=not recorded, steps=steps, interval=tick, night_length=night)
    server.start()
    sources = sources_file(server, poll_interval, ap_rpm)
    ids = [s["id"] for s in sources]
    _clear(database, ids, wipe)
    write_sources(folder / "sources.toml", sources)
    purge_queues()
    env = {**env, "ROME_SOURCES": str(folder / "sources.toml")}
    workers = Workers(env, folder / "workers.log",
                      specs=[("bench-poll", "poll", 2), ("bench", "notekeeper,caesar", 2)])
    beat = None
    started = time.time()
    try:
        workers.start()
        with open(folder / "beat.log", "ab") as log:
            beat = subprocess.Popen([*CELERY, "beat", "-s", str(folder / "beat-schedule"),
                                     "-l", "warning"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        # Recorded feeds move one version every tick; the night is --steps versions.
        length = (steps - 1) * tick if recorded else night
        advanced = 0
        end = started + length + 2 * poll_interval + 5
        while time.time() < end:
            if beat.poll() is not None:
                raise BenchError(f"beat exited with {beat.returncode} (see {folder}/beat.log)")
            if any(p.poll() is not None for p in workers.procs):
                raise BenchError(f"a worker exited (see {folder}/workers.log)")
            if recorded and advanced < steps - 1 and time.time() >= started + (advanced + 1) * tick:
                server.advance()
                advanced += 1
            time.sleep(0.2)
        beat.terminate()
        try:
            beat.wait(30)
        except subprocess.TimeoutExpired:
            # A beat busy publishing on a loaded machine may not stop in time: the night is
            # over either way, so what it would still send does not count.
            beat.kill()
            beat.wait()
        ended = time.time()
        figures = _figures(database, settings, server, sources, started, ended, drain_seconds)
    finally:
        if beat is not None and beat.poll() is None:
            beat.kill()
            beat.wait()
        workers.stop()
        server.stop()
        database.engine.dispose()
    return {"pipeline": "rabbitmq+postgresql" if settings.amqp_broker else "embedded",
            "feeds": "recorded" if recorded else "simulated",
            "night_seconds": round(length, 1), "polled_seconds": round(ended - started, 1),
            "poll_interval": poll_interval, "logs": str(folder), "sources": figures}


def _latencies(database: db.Database, archive: Archive, source: str,
               since: datetime) -> tuple[list[float], int]:
    """Poll-to-visible latencies of source's answers sent on since `since`, and how many
    answers were sent on."""
    with database.Session() as session:
        rows = fetches(session, source, since=since)
        fetched = []
        for row in rows:
            try:
                version = snapshot_of(session, archive, row.id, source, max_ahead=None).version
            except InvalidPayload:
                continue
            fetched.append((version, _utc(row.fetched_at)))
        applied = {version: _utc(at) for version, at in session.execute(
            select(HistoryRow.version, func.min(HistoryRow.applied_at))
            .where(HistoryRow.source_id == source).group_by(HistoryRow.version))}
    return first_visible(fetched, applied), len(rows)


def _figures(database, settings, server, sources, started, ended, drain_seconds) -> dict:
    archive = Archive(settings.archive_dir)
    since = datetime.fromtimestamp(started, UTC)
    # Drain: wait until no new version becomes visible for 5 s in a row.
    ids = [s["id"] for s in sources]
    deadline, last, still = time.monotonic() + drain_seconds, None, 0
    while time.monotonic() < deadline:
        with database.Session() as session:
            seen = session.scalar(select(func.count(func.distinct(HistoryRow.version)))
                                  .where(HistoryRow.source_id.in_(ids)))
        still = still + 1 if seen == last else 0
        last = seen
        if still >= 5:
            break
        time.sleep(1)
    requests = [r for r in server.requests if started <= r.time]
    out = {}
    for source in sources:
        sid = source["id"]
        times = [r.time for r in requests if source_of_path(r.path, sources) == sid]
        latencies, sent_on = _latencies(database, archive, sid, since)
        with database.Session() as session:
            state = session.get(PollStateRow, sid)
            polls = json.loads(state.polls) if state is not None else {}
            empty = session.scalar(select(func.count()).select_from(ArchiveRow).where(
                ArchiveRow.source_id == sid, ArchiveRow.kind == "empty",
                ArchiveRow.fetched_at >= since))
            versions = list(session.scalars(select(ArchiveRow.sha256).where(
                ArchiveRow.source_id == sid, ArchiveRow.kind == "control",
                ArchiveRow.url.like("%current_ver.txt"), ArchiveRow.fetched_at >= since)
                .order_by(ArchiveRow.id)))
        out[sid] = {
            "format": source["format"],
            "requests_per_minute_limit": source["requests_per_minute"],
            "requests": len(times),
            "requests_max_in_60s": max_in_window(times),
            "requests_per_minute_mean": round(mean_per_minute(len(times), ended - started), 2),
            "polls": polls,
            "no_change_answers": empty + unchanged_versions(versions) + polls.get("304", 0),
            "answers_sent_on": sent_on,
            "poll_to_visible": latency_summary(latencies),
        }
    return out

