"""The published folder on the web without nginx (/live/), the wipeout unpublishing, and the
publish lag on /metrics."""

from __future__ import annotations

import json
from pathlib import Path

from rome.publish.lag import record_lags
from rome.publish.publisher import Publisher
from rome.store import db
from tests.helpers.webapp import TOKEN


def publish_all(app) -> Path:
    folder = Path(app.config["PUBLISH_DIR"])
    database = db.connect(app.config["DATABASE_URL"])
    try:
        Publisher(folder, app.config["STALE_AFTER"]).publish_from(database)
    finally:
        database.engine.dispose()
    return folder


def test_live_serves_the_published_files_with_an_etag_and_a_short_max_age(app, client):
    folder = publish_all(app)
    response = client.get("/live/races/1.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_data() == (folder / "races/1.json").read_bytes()
    assert {"public", "max-age=5"} <= set(response.headers["Cache-Control"].split(", "))
    tag = response.headers["ETag"]
    again = client.get("/live/races/1.json", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b""
    asset = client.get("/live/assets/race.js")
    assert "max-age=3600" in asset.headers["Cache-Control"]
    page = client.get("/live/races/1.html")
    assert page.mimetype == "text/html" and b'data-race-json="1.json"' in page.get_data()
    assert client.get("/live/").headers["Location"].endswith("/live/index.json")


def test_live_hides_dot_files_and_what_is_not_published(app, client):
    folder = publish_all(app)
    record_lags(folder, [0.5])
    assert client.get("/live/.publish-lag.json").status_code == 404
    assert client.get("/live/races/999999.json").status_code == 404
    assert client.get("/live/../rome.sqlite3").status_code == 404


def test_a_wipeout_unpublishes_at_once(app, client):
    folder = publish_all(app)
    assert json.loads((folder / "races/1.json").read_bytes())["total_votes"] > 0
    response = client.post("/race/wipeout", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    race = json.loads((folder / "races/1.json").read_bytes())
    assert race["total_votes"] == 0 and all(c["votes"] == 0 for c in race["candidates"])
    assert json.loads(client.get("/live/races/1.json").get_data()) == race


def test_metrics_show_the_publish_lag_quantiles(app, client):
    record_lags(Path(app.config["PUBLISH_DIR"]), [0.2] * 98 + [1.5, 3.0])
    text = client.get("/metrics").get_data(as_text=True)
    assert 'rome_publish_lag_seconds{quantile="0.5"} 0.2' in text
    assert 'rome_publish_lag_seconds{quantile="0.99"} 1.5' in text
    assert "rome_publish_asks_total 100.0" in text
