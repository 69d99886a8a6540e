"""The pipeline's tasks: sources emit feeds, notekeeper normalizes, caesar records.

Tasks are thin: decode, call rome, publish the next step, return. How they
fail is decided in one place, PipelineTask:

- a payload that can never be valid is stored as rejected at once;
- the database or the broker being down is waited out, with backoff and
  jitter, for as long as it takes, holding the message (it is never acked
  uncommitted);
- anything else is retried MAX_TRIES times, then stored as rejected and
  dead-lettered;
- a message whose task kills its worker process (a crash, the OOM killer,
  kill -9) is requeued; on a quorum queue, when its last allowed delivery
  (DELIVERY_LIMIT) kills one too, it is stored as rejected and dead-lettered.

Every message the worker gives up on is dead-lettered, and one signal
handler, _record_dead_letter, stores each of them in `rejected`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import random
import time
from functools import cache

from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from celery.exceptions import Reject, Retry, WorkerLostError
from celery.signals import task_failure, task_rejected, task_unknown
from celery.worker.request import Request
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from rome.feeds.catalog import default_catalog, feed_format
from rome.feeds.formats import parse_feed
from rome.feeds.simulator import Night, emit_tick
from rome.feeds.snapshot import InvalidPayload, Snapshot
from rome.feeds.sources_file import load_sources
from rome.feeds.split import pack
from rome.logs import log
from rome.ops.poller import run_cycle
from rome.publish.coalesce import Coalescer, Flush
from rome.publish.lag import record_lags
from rome.publish.publisher import Publisher
from rome.read.freshness import stale_after
from rome.read.results import level_disagreements
from rome.store import db
from rome.store.archive import (
    MAX_REFERENCE_DIGITS,
    Archive,
    claim_checks,
    claimed_ids,
    prune,
    snapshot_of,
)
from rome.store.dead_letters import dead_letter_key, record_dead_letter
from rome.store.models import SourceRow
from rome.store.tally import record_snapshots, reject_payload
from workers import app, settings
from workers.queues import DELIVERY_LIMIT
from workers.signing import CONTENT_TYPE as SIGNED

logger = logging.getLogger("rome.pipeline")
# A lost or unreachable database: wait it out.
DatabaseError = (OperationalError, InterfaceError)

MAX_TRIES = 3
# Consecutive outage failures in this process: the exponent of its backoff.
_outage_streak = 0


@cache
def database() -> db.Database:
    return db.connect(settings.database_url)


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 16)))


def store_rejected(source: object, body: object, reason: str) -> int | None:
    """Record a payload Rome will not count; return its id, or None if the database is down."""
    try:
        with database().Session.begin() as session:
            return reject_payload(session, source, body, reason).id
    except DatabaseError as exc:
        log(logger, "reject_not_stored", logging.ERROR, reason=reason, error=str(exc))
        return None


def store_dead_letter(key: str, source: object, body: object, reason: str) -> None:
    """Record a message the worker dead-letters, keyed by the message: once, with this reason."""
    try:
        with database().Session.begin() as session:
            record_dead_letter(session, key, source, body, reason, overwrite=True)
    except DatabaseError as exc:
        # The dead-letter recorder records it when the database is back.
        log(logger, "reject_not_stored", logging.ERROR, reason=reason, error=str(exc))


@task_rejected.connect
@task_unknown.connect
@task_failure.connect
def _record_dead_letter(signal=None, sender=None, **info):
    """Record every message the worker gives up on: each one is dead-lettered.

    Three signals cover them all: task_rejected (a message no task could
    decode, or one not signed with a message key), task_unknown (a task name
    nobody registered) and task_failure (a task, ours or one of Celery's
    built-ins, that failed for good, or rejected its message without requeue).
    """
    if signal is task_failure:
        name, exc, args = sender.name, info.get("exception"), info.get("args") or ()
        pipeline = isinstance(sender, PipelineTask)
        if isinstance(exc, Reject):
            reason = f"{name} gave up: {exc!r}"
        elif pipeline:
            reason = f"{name} failed {MAX_TRIES} times: {exc!r}"
        else:
            reason = f"{name} failed: {exc!r}"
        # Only the pipeline's own tasks take a source as their first argument.
        source = args[0] if pipeline and args and isinstance(args[0], str) else None
        body = repr(args)[:1_000_000]
        store_dead_letter(dead_letter_key(info.get("task_id"), body), source, body, reason)
        log(logger, "dead_lettered", logging.ERROR, task=name, task_id=info.get("task_id"),
            reason=reason)
        return
    message = info["message"]
    if signal is task_unknown:
        reason = f"unknown task {info.get('name')!r:.200}"
    elif settings.message_signing and message.content_type != SIGNED:
        # Not even signed: ContentDisallowed, which names the content type only.
        reason = (f"undecodable message ({message.content_type}): message signature missing, "
                  f"only {SIGNED} is accepted ({info.get('exc')})")
    else:  # for a signed one, the reason names what is wrong with its signature
        reason = f"undecodable message ({message.content_type}): {info.get('exc')}"
    log(logger, "message_rejected", logging.ERROR, reason=reason)
    key = dead_letter_key((message.headers or {}).get("id"), message.body)
    store_dead_letter(key, None, message.body, reason)


class LastDeliveryRequest(Request):
    """Record and dead-letter a message whose last allowed delivery killed its worker.

    With task_reject_on_worker_lost Celery requeues the message of a pool
    process that died. A quorum queue counts each delivery (x-delivery-count
    0, 1, ...) and dead-letters the message once it comes back after delivery
    DELIVERY_LIMIT, but nothing would record why. So on that delivery the
    worker rejects the message without requeue itself, with the reason, which
    _record_dead_letter stores in `rejected`; earlier deliveries are requeued
    as before. On a classic
    queue (no count) a message that kills its worker comes back forever.
    """

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        exc = exc.exc if isinstance(exc, ExceptionWithTraceback) else exc
        delivery = (self.message.headers or {}).get("x-delivery-count")
        if (isinstance(exc, WorkerLostError) and isinstance(delivery, int)
                and delivery >= DELIVERY_LIMIT):
            reason = (f"{self.task_name} lost its worker process on delivery {delivery + 1}, "
                      f"the last its queue allows ({exc}); dead-lettered")
            # Rejected without requeue: _record_dead_letter stores it, with this reason.
            try:
                raise Reject(reason, requeue=False)
            except Reject:
                exc_info = ExceptionInfo()
        return super().on_failure(exc_info, send_failed_event, return_ok)


class PipelineTask(app.Task):
    """Decide, for every task of the pipeline, what a failure means."""

    Request = LastDeliveryRequest

    def __call__(self, *args, **kwargs):
        global _outage_streak
        while True:
            try:
                result = super().__call__(*args, **kwargs)
            except (Retry, Reject):
                raise
            except DatabaseError as exc:
                self._wait_out("database_unavailable", exc)
                continue
            except BrokerError as exc:
                self._wait_out("broker_unavailable", exc)
                continue
            except Exception as exc:
                if self.request.retries + 1 < MAX_TRIES:
                    log(logger, "task_failed_retrying", logging.WARNING, task=self.name,
                        task_id=self.request.id, attempt=self.request.retries + 1,
                        error=repr(exc))
                    self._retry(exc)
                    continue  # the broker was down for the retry: waited out, run again
                raise  # _record_dead_letter stores it; acks_on_failure=False dead-letters it
            _outage_streak = 0
            return result

    def _retry(self, exc: Exception) -> None:
        """Republish the task for another try; return only if the broker was down for it."""
        # Whole seconds: on quorum queues a countdown goes through RabbitMQ (native
        # delayed delivery), and Celery 5.7 raises ValueError for one between 0 and 1 s.
        countdown = math.ceil(backoff(self.request.retries))
        try:
            raise self.retry(exc=exc, countdown=countdown) from exc
        except Reject as refused:
            # Celery rejects (without requeue: dead-lettered) when the retry cannot
            # be published. A broker outage is waited out; anything else, such as
            # arguments the task cannot take, will never work.
            if not isinstance(refused.reason, BrokerError):
                raise  # _record_dead_letter records it ("gave up"); then it is dead-lettered
            self._wait_out("broker_unavailable", refused.reason)

    def _wait_out(self, event: str, exc: Exception) -> None:
        """Back off before the task runs again, holding its message: nothing was committed.

        The message is neither requeued nor republished: holding it needs no
        broker (which may be what is down), leaves the retry count to ordinary
        errors, and costs nothing against a quorum queue's delivery limit,
        which counts every requeue: an outage longer than a few backoffs
        would otherwise dead-letter good updates. The backoff grows with this
        process's run of consecutive outage failures.
        """
        global _outage_streak
        delay = backoff(_outage_streak)
        _outage_streak += 1
        log(logger, event, logging.WARNING, task=self.name, task_id=self.request.id,
            streak=_outage_streak, delay=round(delay, 2), error=str(exc).splitlines()[0])
        time.sleep(delay)


@cache
def night(source: str) -> Night:
    """Return the simulated night of source, begun when its row was first stored."""
    with database().Session() as session:
        started = session.get(SourceRow, source).started_at
    return Night(settings.seed, settings.update_chance, settings.source_interval,
                 started.timestamp(), settings.night_seconds)


@app.task(name="rome.source.emit", bind=True, base=PipelineTask)
def emit_source(self, source: str, tick: int) -> int:
    """Render source's feed at tick, if anything changed, and hand it to notekeeper."""
    body, counts = emit_tick(source, tick, night(source), units=settings.reporting_units)
    if body is not None:
        # With confirms on, this returns only after the broker has the message.
        # Clarity's version is its folder's number, not in the file: send it along.
        version = tick if default_catalog().sources[source].format == "clarity" else None
        normalize_feed.apply_async((source, body.decode(), "text", version))
        log(logger, "emitted", source=source, tick=tick, counts=counts, task_id=self.request.id)
    return counts


@cache
def archive() -> Archive:
    return Archive(settings.archive_dir)


@cache
def live_sources() -> dict:
    """ROME_SOURCES, read once a process."""
    return {spec.id: spec for spec in load_sources(settings.sources_file)}


@app.task(name="rome.poll.run", bind=True)
def poll_source(self, source: str) -> int:
    """Poll one live source once (skipped while its last poll runs); send on claim checks."""

    def send(items) -> None:
        # A cycle's fetches of one format, a few to each claim check: a state's county
        # files reach caesar as a few transactions, not one a county (rome/feeds/split.py).
        by_format: dict[str, list[int]] = {}
        for item in items:
            by_format.setdefault(item.format, []).append(item.archive_id)
        for fmt, ids in by_format.items():
            for claim in claim_checks(ids):
                normalize_feed.apply_async((source, claim, "archive", None, fmt))

    try:
        cycle = run_cycle(database(), archive(), live_sources()[source], send=send)
    except DatabaseError as exc:
        # The next poll comes by itself; nothing was stored as taken.
        log(logger, "poll_failed", logging.ERROR, source=source, error=str(exc)[:300],
            task_id=self.request.id)
        return 0
    return 0 if cycle.skipped else len(cycle.outcome.items)


@app.task(name="rome.archive.prune", bind=True)
def prune_archive(self) -> int:
    """Apply ROME_ARCHIVE_RETENTION to the archive."""
    with database().Session.begin() as session:
        gone = prune(session, archive(), days=settings.archive_retention_days,
                     max_bytes=settings.archive_retention_bytes)
    log(logger, "archive_pruned", fetches=gone, task_id=self.request.id)
    return gone


def claimed_snapshot(source: str, reference: object) -> Snapshot:
    """The snapshot of an archived body a claim check names (its archive row's id)."""
    if (not isinstance(reference, str) or not reference.isdigit()
            or len(reference) > MAX_REFERENCE_DIGITS):
        raise InvalidPayload(f"archive reference must be a row id, got {reference!r:.40}")
    with database().Session() as session:
        return snapshot_of(session, archive(), int(reference), source,
                           max_ahead=settings.max_feed_ahead,
                           max_bytes=settings.max_feed_bytes)


def decode_body(body: object, encoding: str) -> str | bytes:
    """Undo the transport encoding of a feed body: text as is, raw bytes as base64."""
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidPayload(f"body is not valid base64: {exc}") from None
    if encoding != "text":
        raise InvalidPayload(f"unknown body encoding {encoding!r:.40}")
    return body


@app.task(name="rome.notekeeper.normalize", bind=True, base=PipelineTask)
def normalize_feed(self, source: str, body: str, encoding: str = "text",
                   version: int | None = None, format_name: str | None = None) -> int:
    """Parse one feed body into a snapshot and chain it into caesar, or reject it.

    encoding "archive" makes body a claim check: the ids of archived fetches
    (rome/store/archive.py), comma-separated, whose bodies, formats, versions and
    county scopes notekeeper reads from there, instead of megabytes through the
    broker. Each fetch is read, or rejected with its reason, alone.
    """
    snapshots = []

    def reject(payload: object, exc: InvalidPayload) -> None:
        rejected_id = store_rejected(source, payload, str(exc))
        if rejected_id is None:
            raise OperationalError("storing a rejected payload", None, exc) from exc
        log(logger, "rejected", logging.WARNING, source=source, reason=str(exc),
            rejected_id=rejected_id, task_id=self.request.id)

    try:
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InvalidPayload(f"version must be a whole number, got {version!r:.40}")
        if encoding == "archive":  # a claim check: the bodies wait in the archive
            for reference in claimed_ids(body):
                try:
                    snapshots.append(claimed_snapshot(source, reference))
                except InvalidPayload as exc:
                    reject(reference, exc)
        else:
            snapshots.append(parse_feed(feed_format(source, format_name),
                                        decode_body(body, encoding), source=source,
                                        version=version, max_ahead=settings.max_feed_ahead,
                                        max_bytes=settings.max_feed_bytes))
    except InvalidPayload as exc:
        reject(body, exc)
        return 0
    # A national answer goes on as parts of whole races, each message under 1 MB, which
    # caesar's processes apply side by side; a claim check's county files go together,
    # a few to a message (rome/feeds/split.py).
    batches = pack(snapshots)
    for batch in batches:
        record.apply_async(([part.to_wire() for part in batch],))
    counts = sum(len(snapshot.counts) for snapshot in snapshots)
    if snapshots:  # parts: the messages to caesar
        log(logger, "normalized", source=source,
            version=",".join(str(snapshot.version) for snapshot in snapshots[:5]),
            counts=counts, snapshots=len(snapshots), parts=len(batches),
            task_id=self.request.id)
    return counts


@app.task(name="rome.caesar.record", bind=True, base=PipelineTask)
def record(self, snapshots: list[dict]) -> int:
    """Apply a batch of snapshots in one transaction: per count, the newest version wins."""
    parsed = []
    with database().Session.begin() as session:
        for wire in snapshots:
            try:
                parsed.append(Snapshot.from_wire(wire, max_ahead=settings.max_feed_ahead))
            except InvalidPayload as exc:
                source = wire.get("source") if isinstance(wire, dict) else None
                reject_payload(session, source, repr(wire), str(exc))
        result = record_snapshots(session, parsed)
        flags = level_disagreements(session, result.races)
    if result.races:
        # Committed: the static files follow (rome/publish/), coalesced there. Every race
        # the batch names, changed or not: a report that changes no figure may still move
        # when its source was last heard from, which every publish writes to sources.json.
        publish_races.apply_async((sorted({race for race, _ in result.races}), time.time()))
    for flag in flags:
        log(logger, "level_disagreement", logging.WARNING, task_id=self.request.id,
            race_id=flag["race_id"], source=flag["source"], candidate_id=flag["candidate_id"],
            top_level=flag["level"], top_votes=flag["votes"], below_level=flag["below_level"],
            below_votes=flag["below_votes"])
    log(logger, "recorded", applied=result.applied, changed=result.changed,
        corrections=result.corrections, stale=result.stale,
        versions=",".join(f"{s.source}@{s.version}" for s in parsed[:5]), task_id=self.request.id)
    return result.applied


@cache
def coalescer() -> Coalescer:
    """This process's coalescer: one publish per ROME_PUBLISH_INTERVAL, whatever the asks."""
    return Coalescer(settings.publish_interval)


@cache
def publisher() -> Publisher:
    return Publisher(settings.publish_dir,
                     stale_after(settings.source_interval, settings.update_chance))


def _publish(flush: Flush) -> None:
    done = publisher().publish_from(database(), flush.race_ids)
    visible = time.time()
    record_lags(settings.publish_dir, [visible - committed for committed in flush.committed])
    log(logger, "published", races="all" if flush.race_ids is None else len(flush.race_ids),
        read=done.races, written=len(done.written), removed=len(done.removed),
        asks=len(flush.committed))


@app.task(name="rome.publish.races", bind=True, base=PipelineTask)
def publish_races(self, race_ids: list[int], committed_at: float) -> int:
    """Publish these races (committed by caesar at committed_at, time.time()) with every
    other ask pending, at most once per ROME_PUBLISH_INTERVAL; the number of races this ask
    published itself, 0 when another ask publishes them.

    The publish worker runs a threads pool: an ask that waits for the interval holds one
    thread, and the asks that arrive meanwhile join its publish and return."""
    if (not isinstance(race_ids, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in race_ids)
            or isinstance(committed_at, bool) or not isinstance(committed_at, int | float)):
        raise Reject(f"publish takes race ids and a time, got {race_ids!r:.80}, "
                     f"{committed_at!r:.40}", requeue=False)
    flush = coalescer().submit(race_ids, committed_at, _publish)
    return 0 if flush is None else len(flush.race_ids or ())
