"""Prometheus metrics read from the database at scrape time, the same from every worker."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rome.store import db, tally
from tests.helpers.webapp import clean_env, dispose, make_app, night, record


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path, SOURCE_INTERVAL=2.0)
    yield app
    dispose(app)


def scrape(app) -> dict[str, dict[tuple, float]]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_changes_applied_and_rejected_per_source(app, database_url):
    database = db.connect(database_url)
    with database.Session.begin() as session:
        tally.reject_payload(session, "cnn", "{}", "unknown source")
        tally.reject_payload(session, None, b"\xff", "undecodable")
    database.engine.dispose()
    samples = scrape(app)
    applied = samples["rome_count_changes_total"]
    assert applied == {(("source", "ap"),): 4, (("source", "mc"),): 2, (("source", "sos"),): 2}
    assert set(samples["rome_count_corrections_total"].values()) == {0}
    assert set(samples["rome_level_disagreements"].values()) == {0}
    # Claimed sources Rome does not know are pooled, so labels stay bounded.
    assert samples["rome_rejected_payloads_total"] == {
        (("source", "ap"),): 1, (("source", "mc"),): 1, (("source", "sos"),): 0,
        (("source", "unknown"),): 2,
    }


def test_corrections_and_level_disagreements_per_source(app, database_url):
    record(database_url, *night())
    samples = scrape(app)
    # AP: 4 changes, then 3 more (Trump's lowered: a correction), and its state
    # figure for Clinton is not the sum of its counties; the state's race 1 adds 4.
    assert samples["rome_count_changes_total"] == {
        (("source", "ap"),): 7, (("source", "mc"),): 2, (("source", "sos"),): 2 + 4,
    }
    assert samples["rome_count_corrections_total"] == {
        (("source", "ap"),): 1, (("source", "mc"),): 0, (("source", "sos"),): 0,
    }
    assert samples["rome_level_disagreements"] == {
        (("source", "ap"),): 1, (("source", "mc"),): 0, (("source", "sos"),): 0,
    }
    # Both sources' figures for race 1, side by side.
    votes = scrape(app)["rome_votes_total"]
    clinton = {dict(labels)["source"]: value for labels, value in votes.items()
               if ("candidate_id", "102") in labels}
    assert clinton == {"ap": 600, "sos": 590}


def test_freshness_lag_and_staleness_per_source(app):
    samples = scrape(app)
    lag = samples["rome_source_freshness_lag_seconds"]
    assert set(lag) == {(("source", s),) for s in ("ap", "mc", "sos")}
    assert all(0 <= value < 10 for value in lag.values())
    assert samples["rome_source_stale_after_seconds"] == {(): 10.0}
    assert set(samples["rome_source_stale"].values()) == {0.0}


def test_tally_totals_per_candidate_and_source(app):
    votes = scrape(app)["rome_votes_total"]
    clinton = next(value for labels, value in votes.items() if ("candidate_id", "102") in labels)
    assert clinton == 513
    labels = dict(next(labels for labels in votes if ("candidate_id", "102") in labels))
    assert labels == {
        "race_id": "1", "race": "President of the United States", "candidate_id": "102",
        "candidate": "Hillary Clinton", "party": "DEM", "source": "ap",
    }
    assert sum(votes.values()) == 1038 + 450 + 600


def test_a_wipeout_resets_the_counters_and_drops_the_lag(app, database_url):
    database = db.connect(database_url)
    with database.Session.begin() as session:
        tally.wipeout(session)
    database.engine.dispose()
    samples = scrape(app)
    assert set(samples["rome_count_changes_total"].values()) == {0}
    assert "rome_source_freshness_lag_seconds" not in samples
    assert "rome_votes_total" not in samples


def test_two_workers_report_the_same_numbers(app, database_url, tmp_path):
    other = make_app(database_url, tmp_path, SOURCE_INTERVAL=2.0)
    try:
        first, second = scrape(app), scrape(other)
    finally:
        dispose(other)
    first.pop("rome_source_freshness_lag_seconds")
    second.pop("rome_source_freshness_lag_seconds")
    assert first == second


def test_no_process_metrics_that_would_differ_between_workers(app):
    assert not [name for name in scrape(app) if name.startswith(("process_", "python_"))]


def test_metrics_without_database_are_503(tmp_path, monkeypatch):
    clean_env(monkeypatch, tmp_path)
    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'rome.sqlite3'}", tmp_path)
    response = app.test_client().get("/metrics")
    dispose(app)
    assert response.status_code == 503
