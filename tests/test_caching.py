"""ETags, 304 Not Modified and Cache-Control on the live API and pages."""

from __future__ import annotations

import time

import pytest

from rome import db, tally
from rome.updates import Update

LIVE_GETS = [
    "/api/races",
    "/api/races/1",
    "/api/races/1/history",
    "/api/rejected",
    "/race/1",
    "/race/1/chart.svg",
]


@pytest.mark.parametrize("path", [*LIVE_GETS, "/race"])
def test_an_unchanged_resource_is_304(client, path):
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_race_tags_each_representation_apart(client, accept):
    json_tag = client.get("/race", headers={"Accept": "application/json"}).headers["ETag"]
    html_tag = client.get("/race", headers={"Accept": "text/html"}).headers["ETag"]
    assert json_tag != html_tag
    response = client.get("/race", headers={"Accept": accept, "If-None-Match": json_tag})
    assert response.status_code == (304 if accept == "application/json" else 200)


def test_new_votes_change_the_tag(client, database_url):
    etags = {path: client.get(path).headers["ETag"] for path in LIVE_GETS[:3]}
    database = db.connect(database_url)
    with database.Session.begin() as session:
        tally.record_updates(session, [Update("ap", 2, 0, 1, 101, 7, time.time())])
    database.engine.dispose()
    for path, etag in etags.items():
        response = client.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 200, path
        assert response.headers["ETag"] != etag


def test_api_answers_may_be_shared_but_pages_are_private(client):
    api = client.get("/api/races").headers["Cache-Control"]
    page = client.get("/race").headers["Cache-Control"]
    assert api == "no-cache"
    assert set(page.split(", ")) == {"private", "no-cache"}


def test_errors_are_not_tagged(client):
    response = client.get("/api/races/99")
    assert response.status_code == 404
    assert "ETag" not in response.headers
