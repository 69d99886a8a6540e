"""ETags, 304 Not Modified and Cache-Control on the live API and pages."""

from __future__ import annotations

import time

import pytest

from tests.helpers.builders import race_snapshot
from tests.helpers.webapp import night, record

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
    # Pages print the time to the second ("updated 20:00:05", "3 s ago"): a pair of
    # requests either side of a second boundary may differ. Only a pair within one
    # second must give a 304.
    for _ in range(5):
        second = int(time.time())
        first = client.get(path)
        assert first.status_code == 200
        etag = first.headers["ETag"]
        assert "no-cache" in first.headers["Cache-Control"]
        again = client.get(path, headers={"If-None-Match": etag})
        if again.status_code == 304 or int(time.time()) == second:
            break
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


@pytest.mark.parametrize(
    "snapshots",
    [
        [race_snapshot("ap", 2, {101: 487})],
        [race_snapshot("ap", 2, {101: 470})],  # a correction
        night(),
    ],
    ids=["new votes", "correction", "call, levels, second source"],
)
def test_new_figures_change_the_tag(client, database_url, snapshots):
    paths = [*LIVE_GETS[:3], "/race/1", "/race/1/chart.svg"]
    etags = {path: client.get(path).headers["ETag"] for path in paths}
    record(database_url, *snapshots)
    for path, etag in etags.items():
        response = client.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 200, path
        assert response.headers["ETag"] != etag


def test_the_original_rows_change_their_tag_with_a_new_source(client, database_url):
    json = {"Accept": "application/json"}
    etag = client.get("/race", headers=json).headers["ETag"]
    record(database_url, race_snapshot("sos", 2, {101: 1}, race_id=1))
    response = client.get("/race", headers={**json, "If-None-Match": etag})
    assert response.status_code == 200 and len(response.get_json()) == 9


def test_an_older_version_keeps_the_tag(client, database_url):
    etag = client.get("/api/races").headers["ETag"]
    record(database_url, race_snapshot("ap", 0, {101: 9999}))
    assert client.get("/api/races", headers={"If-None-Match": etag}).status_code == 304


def test_api_answers_may_be_shared_but_pages_are_private(client):
    api = client.get("/api/races").headers["Cache-Control"]
    page = client.get("/race").headers["Cache-Control"]
    assert api == "no-cache"
    assert set(page.split(", ")) == {"private", "no-cache"}


def test_errors_are_not_tagged(client):
    response = client.get("/api/races/99")
    assert response.status_code == 404
    assert "ETag" not in response.headers
