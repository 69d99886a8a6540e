"""Reads at national size on the web: /api/races filtered and paged, /api/index,
/api/states/<ST>, the index page with its search, and a state's page."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.builders import OFFICES, STATES, national_snapshot
from tests.helpers.webapp import HOSTILE_LAST, HOSTILE_RACE, clean_env, hostile, record, seed
from web.api import MAX_VALUES
from web.states import anchor

RACES = 260
INDEX_BUDGET = 200_000  # bytes: the index page's target at 5,000 races (issue 20)


def iso(name: str) -> str:
    return f"\u2068{name}\u2069"


@pytest.fixture(scope="module")
def national_night(tmp_path_factory) -> Path:
    """The seeded database with a national night and a hostile race, recorded once per module:
    recording 260 races costs 0.7 s of CPU, which every test paid when it recorded its own."""
    path = tmp_path_factory.mktemp("national") / "rome.sqlite3"
    seed(f"sqlite:///{path}")
    record(f"sqlite:///{path}", national_snapshot(RACES, counties=1), hostile())
    return path


@pytest.fixture
def database_url(request, tmp_path, monkeypatch):
    """conftest's seeded database; for a test that takes `national`, its own copy of
    national_night (a copy: test_answers_follow_new_results writes to it)."""
    clean_env(monkeypatch, tmp_path)
    path = tmp_path / "rome.sqlite3"
    if "national" in request.fixturenames:
        shutil.copyfile(request.getfixturevalue("national_night"), path)
    else:
        seed(f"sqlite:///{path}")
    return f"sqlite:///{path}"


@pytest.fixture
def national(database_url):
    """The seeded database with the national night: database_url copies it for this test."""
    return database_url


def get_json(client, path: str, status: int = 200):
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


# /api/races ----------------------------------------------------------------------


def test_races_filtered_by_state_office_and_id(client, national):
    georgia = get_json(client, "/api/races?state=ga")
    assert georgia["total"] == len(georgia["races"]) > 0 and georgia["limit"] is None
    assert {r["state"] for r in georgia["races"]} == {"GA"}
    ids = [r["id"] for r in georgia["races"]]
    assert ids == sorted(ids)
    both = get_json(client, "/api/races?state=GA,AZ&office=Governor&office=U.S.%20House")
    assert {(r["state"], r["office"]) for r in both["races"]} == {
        (s, o) for s in ("GA", "AZ") for o in ("Governor", "U.S. House")}
    picked = get_json(client, f"/api/races?race=1,{ids[0]},{ids[1]}&race=3")
    assert [r["id"] for r in picked["races"]] == [1, 3, ids[0], ids[1]]
    assert get_json(client, "/api/races?state=ZZ")["races"] == []


def test_races_page_by_page_with_links_that_keep_the_filters(client, national):
    path, seen, pages = "/api/races?office=State%20Senate&limit=7", [], 0
    while path:
        page = get_json(client, path)
        assert page["limit"] == 7 and len(page["races"]) <= 7
        assert {r["office"] for r in page["races"]} == {"State Senate"}
        seen += [r["id"] for r in page["races"]]
        if page["next"]:
            assert "office=State+Senate" in page["next"] and "limit=7" in page["next"]
        pages += 1
        path = page["next"]
    assert seen == sorted(set(seen)) and len(seen) == page["total"] == 50 and pages == 8
    second = get_json(client, "/api/races?office=State%20Senate&limit=7&offset=7")
    assert second["previous"] == "/api/races?office=State+Senate&limit=7&offset=0"


def test_races_without_parameters_are_every_race_as_before(client, national):
    every = get_json(client, "/api/races")
    assert every["total"] == len(every["races"]) == RACES + 3 + 1
    assert every["next"] is None and every["limit"] is None


@pytest.mark.parametrize(("query", "says"), [
    ("limit=0", "limit must be a whole number from 1 to 500"),
    ("limit=501", "limit must be a whole number from 1 to 500"),
    ("limit=ten", "limit must be a whole number"),
    ("limit=+5", "limit must be a whole number"),
    ("offset=-1", "offset must be a whole number from 0"),
    ("offset=", "offset must be a whole number"),
    ("race=x", "race must be a whole number from 0 to 2147483647, not 'x'"),
    ("race=1,,2", "race must be a whole number"),
    ("race=99999999999", "race must be a whole number"),
    ("state=G%21A", "state must be a postal code such as GA"),
    ("state=", "state must be a postal code"),
    ("office=", "office must be an office's name"),
    ("office=" + "x" * 301, "office must be an office's name, 1 to 300 characters"),
    ("office=a%00b", "no NUL"),
    ("state=" + ",".join(["GA"] * (MAX_VALUES + 1)), f"state takes at most {MAX_VALUES} values"),
])
def test_a_bad_parameter_is_a_400_that_says_what_is_wrong(client, query, says):
    body = get_json(client, f"/api/races?{query}", 400)
    assert says in body["error"]


# /api/index and /api/states/<ST> -------------------------------------------------


def test_the_index_lists_every_race_by_state_and_office(client, national):
    index = get_json(client, "/api/index")
    assert index["races"] == RACES + 3 + 1
    georgia = next(s for s in index["states"] if s["state"] == "GA")
    assert [o["office"] for o in georgia["offices"]] == sorted(OFFICES)
    race = georgia["offices"][0]["races"][0]
    assert set(race) == {"id", "name", "leader", "reporting", "called"}
    assert race["leader"].endswith("Baker") and 0 <= race["reporting"] <= 100
    tag = client.get("/api/index").headers["ETag"]
    assert client.get("/api/index", headers={"If-None-Match": tag}).status_code == 304


def test_a_state_lists_its_races_in_any_case_and_an_unknown_one_is_404(client, national):
    georgia = get_json(client, "/api/states/ga")
    assert georgia["state"] == "GA" and georgia["offices"] == sorted(OFFICES)
    assert georgia["races"] == get_json(client, "/api/races?state=GA")["races"]
    for unknown in ("ZZ", "G!A", "x" * 17):
        assert "no races in state" in get_json(client, f"/api/states/{unknown}", 404)["error"]


def test_answers_follow_new_results(client, national, database_url):
    before = get_json(client, "/api/races?state=WY&limit=1")["races"][0]["total_votes"]
    snapshot = national_snapshot(RACES, counties=1, version=2)
    record(database_url, snapshot.__class__(**{
        **snapshot.__dict__,
        "counts": tuple(c.__class__(c.race, c.unit, c.candidate, c.votes * 2, c.vote_type)
                        for c in snapshot.counts)}).validate())
    after = get_json(client, "/api/races?state=WY&limit=1")["races"][0]["total_votes"]
    assert after == 2 * before


# The index page and a state's page ---------------------------------------------------


def test_the_index_page_lists_states_and_offices_with_a_search_not_every_race(client, national):
    response = client.get("/index")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    for state in STATES:
        assert f'<a href="/state/{state}"><bdi>{state}</bdi></a>' in html
    for office in OFFICES:
        assert f'href="/state/GA#{anchor(office)}"' in html
    assert '<input id="race-search" type="search" name="q"' in html
    assert '<script src="/static/index.js" defer></script>' in html and "live.js" not in html
    assert 'data-api="/api/index"' in html
    # It does not update itself, so it does not say Live; every page leads to it.
    assert "data-live" not in html and '<p class="status">as of <time' in html
    assert '<a href="/index">Races by state</a>' in client.get("/race").get_data(as_text=True)
    # Races are found by the search, not listed: no race's name or table is on the page.
    assert "District" not in html and 'class="race"' not in html
    assert "<script>" not in html  # the CSP allows no inline script
    assert "script-src" not in response.headers["Content-Security-Policy"]


def test_the_index_page_searches_on_the_server_without_scripts(client, national):
    html = client.get("/index?q=ga+house").get_data(as_text=True)
    found = re.findall(r'<a href="/race/(\d+)"><bdi class="clip" title="([^"]+)">', html)
    assert found and all(name.startswith("GA ") and "House" in name for _, name in found)
    assert f"{len(found)} races match" in html and 'value="ga house"' in html
    none = client.get("/index?q=nowhere").get_data(as_text=True)
    assert "0 races match" in none and '<ol class="match-list" data-match-list>' in none


def test_the_index_page_isolates_names_from_the_feeds(client, national):
    html = client.get("/index?q=testville").get_data(as_text=True)
    assert f'<bdi class="clip" title="{HOSTILE_RACE}">{HOSTILE_RACE}</bdi>' in html
    # The query too is a stranger's text: escaped and isolated.
    evil = client.get("/index?q=%3Cb%3E%E2%80%AEx").get_data(as_text=True)
    assert "<q><bdi>&lt;b&gt;\u202ex</bdi></q>" in evil and "<b>" not in evil


def test_a_states_page_lists_its_races_by_office_linked_to_their_pages(client, national):
    response = client.get("/state/ga")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    georgia = get_json(client, "/api/states/GA")["races"]
    for race in georgia:
        assert f'<tr data-race="{race["id"]}">' in html
        assert f'<a href="/race/{race["id"]}"><bdi class="clip" title="{race["name"]}">' in html
    for office in OFFICES:
        assert f'id="{anchor(office)}"' in html
    assert html.count('class="badge called"') == sum(r["winner"] is not None for r in georgia)
    assert "% reporting" not in html and "%</td>" in html
    assert '<meta http-equiv="refresh" content="5">' in html and "live.js" not in html
    assert f"<title>{iso('GA')} races · Rome</title>" in html


def test_a_states_page_isolates_names_from_the_feeds(client, national):
    html = client.get("/state/AZ").get_data(as_text=True)
    assert f'<bdi class="clip" title="{HOSTILE_RACE}">{HOSTILE_RACE}</bdi>' in html
    leader = f"Eve {HOSTILE_LAST}"
    assert f'<bdi class="clip" title="{leader}">{leader}</bdi>' in html


def test_an_unknown_state_is_a_404_page(client, national):
    for path in ("/state/ZZ", "/state/G!A"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html"
        message = re.search(r"<p class=\"error-message\" data-error>(.*)</p>",
                            response.get_data(as_text=True))[1]
        assert message in ("No races in state ZZ: the index lists every state with races.",
                           "No state &#39;G!A&#39;: states are postal codes such as GA.")


# Size at national scale -----------------------------------------------------------


def index_page_bytes(database_url, races: int, client) -> int:
    record(database_url, national_snapshot(races))
    return len(client.get("/index").get_data())


def test_the_index_page_does_not_grow_with_the_races(client, database_url):
    # Every state and office appears by 250 races; more races add no bytes but digits.
    at_250 = index_page_bytes(database_url, 250, client)
    at_600 = index_page_bytes(database_url, 600, client)
    assert at_600 <= INDEX_BUDGET and at_600 - at_250 < 2_000, (at_250, at_600)


@pytest.mark.slow
def test_at_5000_races_the_index_page_is_within_200_kb(client, database_url):
    started = time.perf_counter()
    size = index_page_bytes(database_url, 5000, client)
    assert size <= INDEX_BUDGET, size
    assert time.perf_counter() - started < 120
