"""Every error answers in kind: JSON with a useful message for the API, a styled page for people."""

from __future__ import annotations

import re

import pytest

from tests.helpers.webapp import dispose, make_app

STYLESHEET = '<link rel="stylesheet" href="/static/style.css">'


def api_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")]


def test_every_api_route_with_an_id_says_ids_are_numbers(app, client):
    numbered = [rule.rule for rule in api_rules(app) if "<int:" in rule.rule]
    assert len(numbered) >= 2  # one race, its history
    for rule in numbered:
        path = re.sub(r"<int:\w+>", "abc", rule)
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/json", path
        assert response.get_json() == {
            "error": "no race with id 'abc': race ids are whole numbers, as listed by /api/races"
        }


def test_every_api_route_refuses_a_wrong_method_in_json_naming_what_it_answers(app, client):
    for rule in api_rules(app):
        path = re.sub(r"<int:\w+>", "1", rule.rule)
        if "<" in path:
            continue  # the catch-all for ids that are not numbers
        response = client.delete(path)
        assert response.status_code == 405, path
        assert response.mimetype == "application/json", path
        assert "GET" in response.headers["Allow"].split(", ")
        assert response.get_json() == {"error": f"DELETE is not allowed on {path}; it answers GET"}


def test_an_unknown_api_route_points_to_the_openapi_document(client):
    response = client.get("/api/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "no API route /api/nowhere: the routes are listed in /api/openapi.json"
    }


def test_a_views_own_message_is_kept(client):
    response = client.get("/api/races/99")
    assert response.get_json() == {"error": "no race with id 99"}


@pytest.mark.parametrize(
    ("method", "path", "status", "title", "message"),
    [
        ("GET", "/race/99", 404, "Not Found", "No race with id 99."),
        ("GET", "/race/abc", 404, "Not Found", "There is no page at /race/abc."),
        ("GET", "/nowhere", 404, "Not Found", "There is no page at /nowhere."),
        ("GET", "/race/1/chart.svg?size=huge", 400, "Bad Request",
         "Size must be one of large, small."),
        ("DELETE", "/race", 405, "Method Not Allowed",
         "DELETE is not allowed on /race; it answers GET."),
    ],
)
def test_pages_answer_a_styled_page_with_a_way_back(client, method, path, status, title, message):
    response = client.open(path, method=method, headers={"Accept": "text/html"})
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert f"<title>{status} {title} · Rome</title>" in html
    assert STYLESHEET in html
    assert re.search(rf'<p class="error-message" data-error>{re.escape(message)}</p>', html)
    assert '<a href="/race">← All races</a>' in html
    # An error page neither polls the API nor reloads itself.
    assert "live.js" not in html and 'http-equiv="refresh"' not in html
    assert "Try again" not in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_an_outage_page_offers_to_try_again(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'rome.sqlite3'}", tmp_path)
    response = app.test_client().get("/race/1?x=1")
    dispose(app)
    assert response.status_code == 503 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "The results database is unavailable." in html
    assert '<a href="/race/1?x=1">Try again</a>' in html
