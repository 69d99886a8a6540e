"""Serve Prometheus metrics read from the database at scrape time.

Every number comes from the database, not from process memory, so whichever
gunicorn worker answers a scrape reports the same values; the publish lag from the
record the publish worker keeps beside the published files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from rome.publish.lag import quantile, read_lags
from rome.read.freshness import age_seconds
from rome.read.results import race_views, rejected_by_source
from rome.read.sources import polling_by_source
from rome.store.db import Database

bp = Blueprint("metrics", __name__)


class RomeCollector:
    """Collect changes, corrections, level checks, rejections, freshness and tallies."""

    def __init__(self, database: Database, stale_after: float, publish_dir: Path | None = None):
        self.database = database
        self.stale_after = stale_after
        self.publish_dir = publish_dir

    def describe(self):
        # Nothing to declare up front: registering must not query the database.
        return []

    def collect(self):
        now = datetime.now(UTC)
        with self.database.Session() as session:
            races = race_views(session, now=now, stale_after=self.stale_after)
            rejected = rejected_by_source(session)
            polling = polling_by_source(session, now)
        # A source reports several races: one sample per source, summed over its races.
        sources = {}
        for race in races:
            for source in race.sources:
                sources.setdefault(source.id, []).append(source)

        applied = CounterMetricFamily(
            "rome_count_changes", "Count changes applied (history rows), per source.",
            labels=["source"],
        )
        corrections = CounterMetricFamily(
            "rome_count_corrections", "Changes that lowered a figure, per source.",
            labels=["source"],
        )
        disagreeing = GaugeMetricFamily(
            "rome_level_disagreements",
            "Top-level figures that differ from the sum of the level below, per source.",
            labels=["source"],
        )
        lag = GaugeMetricFamily(
            "rome_source_freshness_lag_seconds",
            "Seconds since the newest update from the source was applied (absent: none yet).",
            labels=["source"],
        )
        stale = GaugeMetricFamily(
            "rome_source_stale",
            "1 when the source has been silent longer than rome_source_stale_after_seconds.",
            labels=["source"],
        )
        for source_id, views in sorted(sources.items()):
            applied.add_metric([source_id], sum(v.changes for v in views))
            corrections.add_metric([source_id], sum(v.corrections for v in views))
            disagreeing.add_metric([source_id], sum(len(v.disagreements) for v in views))
            age = age_seconds(views[0].heard_at, now)  # the same in every race of the source
            if age is not None:
                lag.add_metric([source_id], age)
            stale.add_metric([source_id], int(views[0].stale))
        yield applied
        yield corrections
        yield disagreeing
        yield lag
        yield stale
        yield GaugeMetricFamily(
            "rome_source_stale_after_seconds",
            "Silence after which a source counts as stale.",
            value=self.stale_after,
        )

        refused = CounterMetricFamily(
            "rome_rejected_payloads",
            "Payloads rejected, per claimed source (unknown: not one of Rome's sources).",
            labels=["source"],
        )
        known = set(sources)
        per_source = dict.fromkeys(sorted(known), 0) | {"unknown": 0}
        # Anyone can claim any source name in a bad payload: keep labels bounded.
        for source, count in rejected.items():
            per_source[source if source in known else "unknown"] += count
        for source, count in per_source.items():
            refused.add_metric([source], count)
        yield refused

        votes = CounterMetricFamily(
            "rome_votes",
            "Votes in the tallies, per candidate and reporting source.",
            labels=["race_id", "race", "candidate_id", "candidate", "party", "source"],
        )
        for race in races:
            for c in race.candidates:
                for source_id, count in sorted(c.by_source.items()):
                    votes.add_metric(
                        [str(race.id), race.name, str(c.id), f"{c.first} {c.last}", c.party,
                         source_id],
                        count,
                    )
        yield votes
        yield from poll_metrics(polling)
        if self.publish_dir is not None:
            yield from publish_metrics(read_lags(self.publish_dir))


def publish_metrics(lags: dict):
    """The publish lag, from caesar's commit to the file in ROME_PUBLISH_DIR."""
    quantiles = GaugeMetricFamily(
        "rome_publish_lag_seconds", "Seconds from caesar's commit to the published file, over "
        "the newest publishes (rome/publish/lag.py), by quantile.", labels=["quantile"])
    for q in (0.5, 0.99):
        value = quantile(lags["samples"], q)
        if value is not None:
            quantiles.add_metric([str(q)], value)
    yield quantiles
    yield CounterMetricFamily("rome_publish_asks", "Caesar's commits published.",
                              value=lags["count"])


def poll_metrics(polling: dict[str, dict]):
    """The live sources' polls (ROME_SOURCES): by outcome, requests, age of the last one."""
    polls = CounterMetricFamily(
        "rome_polls", "Polls of a live source, by outcome: the last HTTP status, error (no "
        "answer), limited (its requests per minute held every request back) or skipped "
        "(the poll before still ran).", labels=["source", "status"])
    requests = GaugeMetricFamily(
        "rome_poll_requests_last_minute", "Requests to the source in the last 60 s.",
        labels=["source"])
    age = GaugeMetricFamily(
        "rome_last_poll_age_seconds", "Seconds since the source's last poll ended.",
        labels=["source"])
    for source, state in sorted(polling.items()):
        for status, count in sorted(state["polls"].items()):
            polls.add_metric([source, status], count)
        requests.add_metric([source], state["requests_last_minute"])
        if state["last_poll_age"] is not None:
            age.add_metric([source], state["last_poll_age"])
    yield polls
    yield requests
    yield age


def metrics_registry(database: Database, stale_after: float,
                     publish_dir: Path | None = None) -> CollectorRegistry:
    """Build a registry holding only Rome's collector, not this process's own metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RomeCollector(database, stale_after, publish_dir))
    return registry


@bp.get("/metrics")
def metrics():
    """Expose Rome's metrics in Prometheus's text format."""
    body = generate_latest(current_app.extensions["rome_metrics"])
    response = Response(body, content_type=CONTENT_TYPE_LATEST)
    response.cache_control.no_store = True
    return response
