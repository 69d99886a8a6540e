"""The live sources' polling, visible: /api/sources, /metrics and the race page's panel."""

from __future__ import annotations

import time

import httpx
import pytest

from rome.feeds.sources_file import SourcesError, load_sources
from rome.ops.poller import apply_items, run_cycle
from rome.store import db
from rome.store.archive import Archive
from tests.helpers.feeds_http import AP_BASE, FakeClock, ap_answer, ap_race
from tests.helpers.webapp import dispose, make_app

URL = f"{AP_BASE}?format=json&level=state"
SOURCES = f"""
[[source]]
id = "live"
format = "ap"
url = "{URL}"
interval = 5
api_key_env = "AP_KEY"
name = "AP live"

[[source]]
id = "idle"
format = "nist"
url = "https://sos.example/results.json"
interval = 30
"""


def polled(database_url, tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES)
    spec = load_sources(path)[0]
    database = db.connect(database_url)
    store = Archive(tmp_path / "archive")
    answers = iter([ap_answer([ap_race("7", "AZ", {"a": 10, "b": 20})], "2024-11-06T03:00:00Z",
                              URL + "&minDateTime=x")])

    def answer(request):
        item = next(answers, None)
        return httpx.Response(200, content=item) if item else httpx.Response(502)

    clock = FakeClock(time.time())
    for _ in range(2):
        run_cycle(database, store, spec, clock=clock, sleep=clock.sleep,
                  env={"AP_KEY": "never-shown-key"}, transport=httpx.MockTransport(answer),
                  send=lambda items: apply_items(database, store, "live", items))
    database.engine.dispose()
    return path


def test_api_sources_metrics_and_the_race_panel_show_the_polling(database_url, tmp_path):
    path = polled(database_url, tmp_path)
    app = make_app(database_url, tmp_path, SOURCES_FILE=str(path))
    try:
        client = app.test_client()
        listed = client.get("/api/sources").get_json()["sources"]
        live, idle = listed
        assert (live["id"], live["name"], live["status"]) == ("live", "AP live", 502)
        assert live["polls"] == {"200": 1, "502": 1} and live["requests_last_minute"] == 2
        assert "HTTP 502" in live["last_error"] and live["next_poll_at"]
        assert idle["last_poll_at"] is None and idle["polls"] == {}
        assert "never-shown-key" not in client.get("/api/sources").get_data(as_text=True)

        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'rome_polls_total{source="live",status="502"} 1.0' in metrics
        assert 'rome_poll_requests_last_minute{source="live"} 2.0' in metrics
        assert 'rome_last_poll_age_seconds{source="live"}' in metrics

        race = next(r for r in client.get("/api/races").get_json()["races"]
                    if any(s["id"] == "live" for s in r["sources"]))
        page = client.get(f"/race/{race['id']}").get_data(as_text=True)
        assert "data-polling" in page and "HTTP 502" in page
        assert "requests in the last minute" in page
    finally:
        dispose(app)


def test_api_sources_is_empty_on_the_simulated_night(app):
    assert app.test_client().get("/api/sources").get_json() == {"sources": []}


def test_a_bad_sources_file_stops_the_web_at_start(database_url, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SOURCES.replace('format = "nist"', 'format = "csv"'))
    with pytest.raises(SourcesError, match=r"bad.toml:\d+: key 'format'"):
        make_app(database_url, tmp_path, SOURCES_FILE=str(path))
