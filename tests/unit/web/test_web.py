"""Exercise every route of the web app against a temporary SQLite database."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from datetime import datetime
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu.exceptions import OperationalError as BrokerError

from tests.helpers import webapp
from tests.helpers.builders import race_snapshot
from tests.helpers.support import CountingProxy, wait_for
from web import create_app
from web.registry import inspect_workers
from workers.queues import POLL_QUEUE, QUEUES

TOKEN, VOTES = webapp.TOKEN, webapp.VOTES

WORKERS = [
    {
        "name": "caesar@host",
        "queues": ["caesar"],
        "tasks": ["rome.caesar.record"],
        "pid": 11,
        "processes": 2,
    },
    {
        "name": "ap@host",
        "queues": ["elections_ap"],
        "tasks": ["rome.source.emit"],
        "pid": 12,
        "processes": 1,
    },
    {
        "name": "apple@host",
        "queues": ["notekeeper"],
        "tasks": ["rome.notekeeper.normalize"],
        "pid": 13,
        "processes": 4,
    },
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    webapp.clean_env(monkeypatch, tmp_path)


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    webapp.seed(url)
    return url


@pytest.fixture
def broker_folders(tmp_path):
    return webapp.broker_folders(tmp_path)


def make_app(database_url, broker_folders, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "ADMIN_TOKEN": TOKEN,
        "BROKER_URL": "filesystem://",
        "BROKER_TRANSPORT_OPTIONS": broker_folders,
        "REGISTRY": lambda: [dict(w) for w in WORKERS],
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(database_url, broker_folders):
    app = make_app(database_url, broker_folders)
    yield app
    webapp.dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# /race ---------------------------------------------------------------------


def test_race_page_shows_every_race(client):
    response = client.get("/race")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "Accept" in response.vary
    html = response.get_data(as_text=True)
    for name in ("President of the United States", "Maricopa County Sheriff", "U.S. Senator"):
        assert name in html
    assert "Hillary Clinton" in html and "Jill Stein" in html
    assert 'title="Democratic">DEM</abbr>' in html
    assert "513" in html and "49.4%" in html  # 513 of 1038 votes
    assert '<meta http-equiv="refresh" content="5">' in html


def test_race_page_marks_the_leader(client):
    html = client.get("/race").get_data(as_text=True)
    leader_rows = [row for row in html.split("<tr") if 'class="leader"' in row]
    assert len(leader_rows) == 2  # the senate race is tied
    assert "Hillary Clinton" in leader_rows[0] and "Leading" in leader_rows[0]
    assert "Paul Penzone" in leader_rows[1]
    assert "tied" in html


def test_race_page_shows_sources_and_rejected_count(client):
    html = client.get("/race").get_data(as_text=True)
    for name in ("Associated Press", "Maricopa County Recorder", "Arizona Secretary of State"):
        assert name in html
    assert "1,038 votes in 4 changes" in html
    assert "<time datetime=" in html and " UTC</time>" in html
    assert "2 rejected payloads" in html


def test_race_page_makes_no_outside_requests(client):
    html = client.get("/race").get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert 'src="//' not in html and 'href="//' not in html
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert "url(" not in css.get_data(as_text=True) and "@import" not in css.get_data(as_text=True)


# The original nero's row, race.Item in services/Nero/model/race/race.go of
# github.com/bluefoxcode/rome: each field's JSON name and Go type.
ORIGINAL_ITEM = {
    "raceID": "string", "raceName": "string", "firstName": "string", "lastName": "string",
    "party": "string", "candidateID": "string", "voteCount": "int32", "source": "string",
}


def go_decodes(row: dict) -> bool:
    """Tell whether encoding/json would decode row into a race.Item with no field left out."""
    if set(row) != set(ORIGINAL_ITEM):
        return False
    for name, kind in ORIGINAL_ITEM.items():
        value = row[name]
        if kind == "string" and not isinstance(value, str):
            return False
        if kind == "int32" and not (
            isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31
        ):
            return False
    return True


def original_rows(client) -> list[dict]:
    response = client.get("/race", headers={"Accept": "application/json"})
    assert response.status_code == 200
    return response.get_json()


@pytest.mark.parametrize(
    "accept",
    ["application/json", "text/html;q=0.5, application/json", "application/*"],
)
def test_race_returns_original_rows_when_json_is_preferred(client, accept):
    response = client.get("/race", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "Accept" in response.vary
    rows = response.get_json()
    assert len(rows) == len(VOTES)
    assert all(go_decodes(row) for row in rows)
    clinton = next(row for row in rows if row["candidateID"] == "102")
    assert clinton == {
        "raceID": "1",
        "raceName": "President of the United States",
        "firstName": "Hillary",
        "lastName": "Clinton",
        "party": "DEM",
        "candidateID": "102",
        "voteCount": 513,
        "source": "AP",
    }
    assert {(row["raceID"], row["source"]) for row in rows} == {
        ("1", "AP"), ("2", "MC"), ("3", "SOS")
    }


def test_original_rows_are_one_per_race_candidate_and_source(client, night):
    rows = original_rows(client)
    assert all(go_decodes(row) for row in rows)
    # Race 1 is now reported by AP and the Secretary of State: a row from each.
    assert len(rows) == len(VOTES) + 4
    keys = [(row["raceID"], row["candidateID"], row["source"]) for row in rows]
    assert len(set(keys)) == len(keys)
    race_1 = {(row["candidateID"], row["source"]): row["voteCount"]
              for row in rows if row["raceID"] == "1"}
    assert race_1 == {
        **{(str(cid), "AP"): votes for cid, votes in webapp.AP_V2.items()},
        **{(str(cid), "SOS"): votes for cid, votes in webapp.SOS_RACE_1.items()},
    }
    # The state figure, not the state plus its counties, nor the vote types.
    assert race_1[("102", "AP")] == 600


def test_original_rows_leave_out_sources_without_figures(client):
    client.post("/race/wipeout", headers=bearer(TOKEN))
    assert original_rows(client) == []


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "text/html, application/json"])
def test_race_returns_html_to_browsers(client, accept):
    headers = {"Accept": accept} if accept else {}
    assert client.get("/race", headers=headers).mimetype == "text/html"


# /api/races -----------------------------------------------------------------


def test_api_races(client):
    response = client.get("/api/races")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"races", "rejected", "total", "limit", "offset", "next", "previous"}
    assert body["rejected"] == 2
    # Unfiltered and unpaged: every race, on one page.
    assert (body["total"], body["limit"], body["offset"], body["next"], body["previous"]) == (
        3, None, 0, None, None)
    assert [race["id"] for race in body["races"]] == [1, 2, 3]
    president = body["races"][0]
    assert president["total_votes"] == 1038
    assert president["leader"] == 102
    assert body["races"][2]["leader"] is None
    clinton = next(c for c in president["candidates"] if c["id"] == 102)
    assert clinton["votes"] == 513 and clinton["by_source"] == {"ap": 513}
    assert clinton["share"] == pytest.approx(513 / 1038, abs=1e-6)
    # The catalog has the Secretary of State report it too; it has not yet.
    ap, sos = president["sources"]
    assert president["primary_source"] == "ap"
    assert (ap["id"], ap["code"], ap["votes"], ap["changes"], ap["corrections"]) == (
        "ap", "AP", 1038, 4, 0)
    assert (ap["level"], ap["version"], ap["units_reporting"], ap["units_total"]) == (
        "state", 1, 1, 1)
    assert ap["last_update_at"].endswith("+00:00") and ap["feed_at"].endswith("+00:00")
    assert (sos["id"], sos["level"], sos["votes"], sos["last_update_at"]) == ("sos", None, 0, None)
    assert not president["sources_disagree"] and not president["test"]
    assert president["winner"] is None and president["called_by"] is None
    assert ap["level_disagreements"] == []


def test_api_shows_progress_calls_corrections_and_level_checks(client, night):
    check_night(client.get("/api/races").get_json())


def test_postgresql_answers_the_same(database, tmp_path):
    # The SQLite tests above, on the other dialect: sums, counts and flags alike.
    url = database.engine.url.render_as_string(hide_password=False)
    webapp.seed(url)
    webapp.record(url, *webapp.night())
    app = webapp.make_app(url, tmp_path)
    try:
        check_night(app.test_client().get("/api/races").get_json())
        rows = original_rows(app.test_client())
    finally:
        webapp.dispose(app)
    assert len(rows) == len(VOTES) + 4 and all(go_decodes(row) for row in rows)


def check_night(body: dict) -> None:
    """Check /api/races after webapp.night()."""
    races = {race["id"]: race for race in body["races"]}
    president = races[1]
    ap, sos = president["sources"]
    assert president["winner"] == 102 and ap["winner"] == 102 and sos["winner"] is None
    assert president["called_by"] == "ap"
    assert (ap["units_reporting"], ap["units_total"], ap["units_level"]) == (2, 3, "county")
    assert (ap["precincts_reporting"], ap["precincts_total"]) == webapp.PRECINCTS
    assert ap["version"] == 2
    # Trump's 480 became 470: a correction; Stein's 12 did not change.
    assert (ap["changes"], ap["corrections"]) == (4 + 3, 1)
    assert ap["votes"] == sum(webapp.AP_V2.values()) == president["total_votes"]
    assert ap["level_disagreements"] == [{
        "candidate_id": 102, "level": "state", "votes": 600, "below_level": "county",
        "below_votes": 590, "difference": 10,
    }]
    assert sos["level_disagreements"] == [] and sos["votes"] == sum(webapp.SOS_RACE_1.values())
    clinton = next(c for c in president["candidates"] if c["id"] == 102)
    assert clinton["votes"] == 600 and clinton["by_source"] == {"ap": 600, "sos": 590}
    assert clinton["vote_types"] == {"early": 500, "election_day": 100}
    assert clinton["sources_differ"] and president["sources_disagree"]
    assert [c["id"] for c in president["candidates"] if c["sources_differ"]] == [102]
    # Maricopa's second report is marked as test data; nothing else is.
    assert [race["id"] for race in races.values() if race["test"]] == [2]
    assert races[2]["sources"][0]["test"] is True


def test_the_headline_is_the_first_source_with_figures(client, database_url):
    client.post("/race/wipeout", headers=bearer(TOKEN))
    webapp.record(database_url, race_snapshot("sos", 5, webapp.SOS_RACE_1, race_id=1))
    race = client.get("/api/races/1").get_json()
    # AP comes first in the catalog but has said nothing: the headline is the state's.
    assert race["primary_source"] == "sos"
    assert race["total_votes"] == sum(webapp.SOS_RACE_1.values())
    assert race["leader"] == 102 and not race["sources_disagree"]
    assert client.get("/api/races/1/history").get_json()["source"] == "sos"


def test_a_candidate_missing_from_one_level_is_a_disagreement(client, database_url):
    counties = {"Maricopa": {101: 480, 102: 513, 103: 33, 104: 12}}
    top = {101: 480, 102: 513, 103: 33}  # no state figure for Stein
    client.post("/race/wipeout", headers=bearer(TOKEN))
    webapp.record(database_url, race_snapshot("ap", 3, top, below=counties))
    (ap, _) = client.get("/api/races/1").get_json()["sources"]
    assert ap["level_disagreements"] == [{
        "candidate_id": 104, "level": "state", "votes": 0, "below_level": "county",
        "below_votes": 12, "difference": -12,
    }]


def test_api_one_race(client):
    response = client.get("/api/races/2")
    assert response.status_code == 200
    race = response.get_json()
    assert race["name"] == "Maricopa County Sheriff"
    assert race["leader"] == 202


@pytest.mark.parametrize("path", ["/api/races/99", "/api/races/abc", "/api/races/-1"])
def test_api_unknown_race_is_404_json(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]


# /api/rejected --------------------------------------------------------------


def test_api_rejected_lists_newest_first(client):
    body = client.get("/api/rejected").get_json()
    assert body["count"] == 2
    assert [r["reason"] for r in body["rejected"]] == ["races missing", "body is not JSON"]
    assert set(body["rejected"][0]) == {"id", "source", "reason", "payload", "received_at"}


def test_api_rejected_limit(client):
    body = client.get("/api/rejected?limit=1").get_json()
    assert body["count"] == 2
    assert [r["source"] for r in body["rejected"]] == ["ap"]
    assert client.get("/api/rejected?limit=500").status_code == 200


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "1.5", "", " 5", "+5", "1_0", "99999"])
def test_api_rejected_bad_limit_is_400(client, limit):
    response = client.get("/api/rejected", query_string={"limit": limit})
    assert response.status_code == 400
    assert response.get_json() == {"error": "limit must be an integer from 1 to 500"}


# /race/wipeout --------------------------------------------------------------


def test_wipeout_get_is_405(client):
    response = client.get("/race/wipeout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    as_json = client.get("/race/wipeout", headers={"Accept": "application/json"})
    assert as_json.status_code == 405 and as_json.get_json()["error"]


def test_wipeout_disabled_without_admin_token(database_url, broker_folders):
    app = make_app(database_url, broker_folders, ADMIN_TOKEN=None)
    response = app.test_client().post("/race/wipeout", headers=bearer(TOKEN))
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 403
    assert response.get_json() == {"error": "wipeout is disabled: no admin token configured"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token-value"),
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer t\u00f6ken-not-ascii"},
    ],
)
def test_wipeout_without_the_right_token_is_401(client, headers):
    response = client.post("/race/wipeout", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["error"]
    assert client.get("/api/races").get_json()["races"][0]["total_votes"] == 1038


def test_wipeout_deletes_every_result(client, caplog):
    with caplog.at_level(logging.INFO, logger="rome.web"):
        response = client.post(
            "/race/wipeout", headers=bearer(TOKEN), environ_base={"REMOTE_ADDR": "203.0.113.7"}
        )
    assert response.status_code == 200
    assert response.get_json() == {
        "current_counts": len(VOTES), "history": len(VOTES), "tallies": len(VOTES),
        "series": len(VOTES), "race_status": 3, "count_scopes": 3,
    }
    races = client.get("/api/races").get_json()["races"]
    assert all(race["total_votes"] == 0 and race["leader"] is None for race in races)
    wiped = [r for r in caplog.records if "event=wipeout " in r.getMessage()]
    assert len(wiped) == 1 and "remote_addr=203.0.113.7" in wiped[0].getMessage()


# /registry ------------------------------------------------------------------


def test_registry_lists_every_worker_and_says_how_fresh_the_list_is(client):
    before = time.time()
    response = client.get("/registry")
    assert response.status_code == 200
    body = response.get_json()
    assert body["services"] == WORKERS
    as_of = datetime.fromisoformat(body["as_of"]).timestamp()
    assert before - 0.01 <= as_of <= time.time() and body["as_of"].endswith("Z")
    assert 0 <= body["age_seconds"] < 5


def test_registry_answers_at_once_while_a_slow_refresh_runs(database_url, broker_folders):
    release, calls = threading.Event(), []

    def slow_inspect():
        calls.append(time.monotonic())
        if len(calls) > 1:
            release.wait(10)  # as a broadcast waits out its timeout, only longer
        return [dict(w) for w in WORKERS]

    app = make_app(database_url, broker_folders, REGISTRY=slow_inspect, REGISTRY_REFRESH=0.05)
    client = app.test_client()
    try:
        assert client.get("/registry").status_code == 200  # waits for the first list only
        wait_for(lambda: len(calls) == 2, 5, interval=0.01, what="a refresh to hang")
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get("/registry", query_string={"service": "caesar"})
            durations.append(time.perf_counter() - started)
            assert [w["name"] for w in response.get_json()["services"]] == ["caesar@host"]
        # Milliseconds, not the 10 s the refresh is stuck for (bounds loose for a busy machine).
        assert statistics.median(durations) < 0.02 and max(durations) < 0.25, durations
        time.sleep(0.3)
        assert client.get("/registry").get_json()["age_seconds"] >= 0.3  # and says it is aging
    finally:
        release.set()
        webapp.dispose(app)


def test_registry_waits_for_a_refresh_when_its_list_is_too_old(database_url, broker_folders):
    calls = []

    def inspect():
        calls.append(time.time())
        return [dict(w) for w in WORKERS]

    app = make_app(database_url, broker_folders, REGISTRY=inspect,
                   REGISTRY_REFRESH=60, REGISTRY_MAX_AGE=0.2)
    client = app.test_client()
    first = client.get("/registry").get_json()
    time.sleep(0.3)
    second = client.get("/registry").get_json()
    webapp.dispose(app)
    assert len(calls) == 2
    assert second["as_of"] > first["as_of"] and second["age_seconds"] < 0.2


@pytest.mark.parametrize(
    ("service", "names"),
    [
        ("caesar", ["caesar@host"]),
        ("elections_ap", ["ap@host"]),
        ("ap", ["ap@host"]),
        ("notekeeper", ["apple@host"]),
        ("apple@host", ["apple@host"]),
    ],
)
def test_registry_filters_by_service(client, service, names):
    response = client.get("/registry", query_string={"service": service})
    assert response.status_code == 200
    assert [w["name"] for w in response.get_json()["services"]] == names


def test_registry_unknown_service_is_404(client):
    response = client.get("/registry?service=nobody")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no live worker serves 'nobody'"}


def test_registry_empty_service_is_400(client):
    response = client.get("/registry?service=")
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_registry_broker_down_is_503(database_url, broker_folders):
    def unreachable():
        raise BrokerError("[Errno 111] Connection refused")

    app = make_app(database_url, broker_folders, REGISTRY=unreachable)
    response = app.test_client().get("/registry")
    webapp.dispose(app)
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "cannot list the workers: [Errno 111] Connection refused"
    }


def test_registry_keeps_the_last_list_through_a_failed_refresh(database_url, broker_folders):
    answers = [[dict(w) for w in WORKERS], BrokerError("[Errno 111] Connection refused")]

    def flaky():
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    app = make_app(database_url, broker_folders, REGISTRY=flaky, REGISTRY_REFRESH=0.05)
    client = app.test_client()
    assert "refresh_error" not in client.get("/registry").get_json()
    wait_for(lambda: "refresh_error" in client.get("/registry").get_json(), 5, interval=0.02,
             what="a failed refresh")
    body = client.get("/registry").get_json()
    webapp.dispose(app)
    assert body["services"] == WORKERS
    assert body["refresh_error"] == "[Errno 111] Connection refused"


class FakeInspect:
    def __init__(self, replies):
        self.replies = replies

    def active_queues(self):
        return self.replies.get("active_queues")

    def registered(self):
        return self.replies.get("registered")

    def stats(self):
        return self.replies.get("stats")


def fake_celery(replies, calls):
    def inspect(timeout, limit=None):
        calls.append((timeout, limit))
        return FakeInspect(replies)

    return SimpleNamespace(control=SimpleNamespace(inspect=inspect))


def test_inspect_workers_merges_the_three_replies():
    calls = []
    replies = {
        "active_queues": {
            "caesar@h": [{"name": "caesar", "exchange": {}}, {"name": "notekeeper"}],
            "ap@h": [{"name": "elections_ap"}],
        },
        "registered": {"caesar@h": ["rome.caesar.record", "rome.notekeeper.normalize"]},
        "stats": {
            "caesar@h": {"pid": 42, "pool": {"max-concurrency": 4, "processes": [1, 2, 3, 4]}},
            "ap@h": {"pid": 7, "pool": {"processes": [9]}},
        },
    }
    workers = inspect_workers(fake_celery(replies, calls), timeout=0.5)
    # The second inspect stops once as many workers answered as the first found.
    assert calls == [(0.5, None), (0.5, 2)]
    assert workers == [
        {"name": "ap@h", "queues": ["elections_ap"], "tasks": [], "pid": 7, "processes": 1},
        {
            "name": "caesar@h",
            "queues": ["caesar", "notekeeper"],
            "tasks": ["rome.caesar.record", "rome.notekeeper.normalize"],
            "pid": 42,
            "processes": 4,
        },
    ]


def test_inspect_workers_with_no_replies():
    assert inspect_workers(fake_celery({}, []), timeout=0.1) == []


def test_inspect_workers_with_partial_replies():
    replies = {"registered": {"w@h": ["t"]}}
    assert inspect_workers(fake_celery(replies, [])) == [
        {"name": "w@h", "queues": [], "tasks": ["t"], "pid": None, "processes": None}
    ]


# /healthz -------------------------------------------------------------------

# One worker per queue, as compose runs them: every pipeline queue has a consumer.
CONSUMING = [{"name": f"{q}@host", "queues": [q], "tasks": [], "pid": i, "processes": 1}
             for i, q in enumerate(QUEUES)]
HEALTHY = {"status": "ok", "database": "ok", "broker": "ok", "workers": "ok"}


def healthz_app(database_url, broker_folders, **overrides):
    return make_app(database_url, broker_folders,
                    **{"REGISTRY": lambda: [dict(w) for w in CONSUMING], **overrides})


def test_healthz_ok(database_url, broker_folders):
    app = healthz_app(database_url, broker_folders)
    response = app.test_client().get("/healthz")
    webapp.dispose(app)
    assert response.status_code == 200
    assert response.get_json() == HEALTHY


def test_healthz_503_when_a_pipeline_queue_has_no_consumer(database_url, broker_folders,
                                                          caplog):
    # control.cancel_consumer left caesar's worker consuming nothing: ingestion stops.
    workers = [dict(w) if w["name"] != "caesar@host" else {**w, "queues": []}
               for w in CONSUMING]
    app = healthz_app(database_url, broker_folders, REGISTRY=lambda: workers)
    with caplog.at_level(logging.WARNING, logger="rome.web"):
        for _ in range(20):
            response = app.test_client().get("/healthz")
    webapp.dispose(app)
    assert response.status_code == 503
    assert response.get_json() == {**HEALTHY, "status": "error", "workers": "unavailable"}
    # One line per check period, not per request: asking cannot flood the log.
    [record] = [r for r in caplog.records if "event=health_check_failed" in r.getMessage()]
    assert "check=workers" in record.getMessage()
    assert "no worker consumes caesar" in record.getMessage()
    assert "consuming nothing: caesar@host" in record.getMessage()


def test_healthz_503_when_no_worker_answers(database_url, broker_folders, caplog):
    app = healthz_app(database_url, broker_folders, REGISTRY=lambda: [])
    with caplog.at_level(logging.WARNING, logger="rome.web"):
        response = app.test_client().get("/healthz")
    webapp.dispose(app)
    assert response.status_code == 503 and response.get_json()["workers"] == "unavailable"
    pipeline = [queue for queue in QUEUES if queue != POLL_QUEUE]
    assert f"no worker consumes {', '.join(pipeline)}" in caplog.text
    assert POLL_QUEUE not in caplog.text  # not asked for without ROME_SOURCES


# Compose runs no poll worker, and without ROME_SOURCES nothing is sent to the poll queue:
# /healthz answered 503 for ever there (the CI run that took issue 23's first try out).
WITHOUT_POLL = [w for w in CONSUMING if w["queues"] != [POLL_QUEUE]]


def test_healthz_needs_no_poll_worker_without_live_sources(database_url, broker_folders):
    app = healthz_app(database_url, broker_folders,
                      REGISTRY=lambda: [dict(w) for w in WITHOUT_POLL])
    response = app.test_client().get("/healthz")
    webapp.dispose(app)
    assert response.status_code == 200, response.get_json()


def test_healthz_needs_a_poll_worker_with_live_sources(database_url, broker_folders, tmp_path,
                                                       caplog):
    sources = tmp_path / "sources.toml"
    sources.write_text('[[source]]\nid = "live"\nformat = "nist"\n'
                       'url = "https://sos.example/results.json"\ninterval = 30\n')
    app = healthz_app(database_url, broker_folders, SOURCES_FILE=str(sources),
                      REGISTRY=lambda: [dict(w) for w in WITHOUT_POLL])
    with caplog.at_level(logging.WARNING, logger="rome.web"):
        response = app.test_client().get("/healthz")
    webapp.dispose(app)
    assert response.status_code == 503 and response.get_json()["workers"] == "unavailable"
    assert "no worker consumes poll" in caplog.text


def test_readyz_answers_200_before_any_worker_has_started(database_url, broker_folders):
    # What compose's healthcheck of nero asks: the web can serve, workers or not.
    app = healthz_app(database_url, broker_folders, REGISTRY=lambda: [])
    client = app.test_client()
    ready, health = client.get("/readyz"), client.get("/healthz")
    webapp.dispose(app)
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert health.status_code == 503


def test_readyz_503_when_the_database_or_broker_is_unreachable(tmp_path, database_url,
                                                               broker_folders):
    missing = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'rome.sqlite3'}"
    options = dict(broker_folders, control_folder=str(tmp_path / "gone"))
    answers = []
    for overrides in ({"DATABASE_URL": missing}, {"BROKER_TRANSPORT_OPTIONS": options}):
        app = healthz_app(overrides.get("DATABASE_URL", database_url), broker_folders,
                          **{k: v for k, v in overrides.items() if k != "DATABASE_URL"})
        response = app.test_client().get("/readyz")
        webapp.dispose(app)
        answers.append((response.status_code, response.get_json()))
    assert answers == [
        (503, {"status": "error", "database": "unavailable", "broker": "ok"}),
        (503, {"status": "error", "database": "ok", "broker": "unavailable"}),
    ]


def test_concurrent_healthz_make_one_broker_connection_per_period(database_url, broker_folders,
                                                                   amqp_url):
    parts = urlsplit(amqp_url)
    proxy = CountingProxy(parts.hostname, parts.port or 5672)
    url = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}")
    app = healthz_app(database_url, broker_folders, BROKER_URL=urlunsplit(url),
                      BROKER_TRANSPORT_OPTIONS={}, HEALTH_CHECK_EVERY=2.0)
    statuses = []

    def ask(times):
        client = app.test_client()
        for _ in range(times):
            statuses.append(client.get("/healthz").status_code)

    def burst(clients=20, times=5):
        threads = [threading.Thread(target=ask, args=(times,)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        began = time.monotonic()
        burst()
        assert time.monotonic() - began < 2.0, "the burst outlasted one period"
        assert statuses == [200] * 100
        assert proxy.connections == 1  # 100 requests from 20 threads, one connection
        time.sleep(2.0)  # the answer is too old now: the next burst checks once more
        burst()
        assert proxy.connections == 2
    finally:
        proxy.close()
        webapp.dispose(app)


def test_healthz_ok_with_memory_broker(database_url, broker_folders):
    app = healthz_app(
        database_url, broker_folders, BROKER_URL="memory://", BROKER_TRANSPORT_OPTIONS={}
    )
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 200


def test_healthz_503_when_database_unreachable(tmp_path, broker_folders, caplog):
    url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'rome.sqlite3'}"
    app = healthz_app(url, broker_folders)
    with caplog.at_level(logging.WARNING, logger="rome.web"):
        response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    # Which check failed, for anyone; the driver's words (paths, hosts) only in the log.
    assert response.get_json() == {**HEALTHY, "status": "error", "database": "unavailable"}
    [record] = [r for r in caplog.records if "event=health_check_failed" in r.getMessage()]
    assert "check=database" in record.getMessage()
    assert "unable to open database file" in record.getMessage()


def test_healthz_503_when_broker_folder_missing(database_url, broker_folders, tmp_path, caplog):
    options = dict(broker_folders, control_folder=str(tmp_path / "gone"))
    app = healthz_app(database_url, broker_folders, BROKER_TRANSPORT_OPTIONS=options)
    with caplog.at_level(logging.WARNING, logger="rome.web"):
        response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    assert response.get_json() == {**HEALTHY, "status": "error", "broker": "unavailable"}
    assert str(tmp_path) not in response.get_data(as_text=True)
    assert f"broker folder {tmp_path / 'gone'} does not exist" in caplog.text


def test_healthz_503_when_amqp_broker_refuses(database_url, broker_folders):
    app = make_app(
        database_url,
        broker_folders,
        BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
        BROKER_TRANSPORT_OPTIONS={},
    )
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    assert response.get_json()["broker"] == "unavailable"


def test_healthz_200_when_one_node_of_a_cluster_answers(database_url, broker_folders,
                                                        amqp_url):
    dead = "amqp://guest:guest@127.0.0.1:1//;amqp://guest:guest@127.0.0.1:2//"
    app = healthz_app(database_url, broker_folders, BROKER_URL=f"{dead};{amqp_url}",
                   BROKER_TRANSPORT_OPTIONS={})
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["broker"] == "ok"


# errors ---------------------------------------------------------------------


def test_unknown_route_is_json_when_json_is_preferred(client):
    response = client.get("/nowhere", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]


def test_unknown_api_route_is_json(client):
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert response.get_json()["error"]


def test_unknown_route_is_html_for_browsers(client):
    response = client.get("/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_api_without_database_is_503_not_500(tmp_path, broker_folders):
    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'rome.sqlite3'}", broker_folders)
    client = app.test_client()
    responses = [client.get("/api/races"), client.get("/race"), client.get("/api/rejected")]
    app.extensions["rome_db"].engine.dispose()
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert responses[0].get_json() == {"error": "the results database is unavailable"}


def test_race_page_splits_votes_by_source_when_a_race_has_several(client, database_url):
    html = client.get("/race").get_data(as_text=True)
    # Race 1's second source has no figures yet: a dash, not a zero.
    header = '<th scope="col" class="num by-source" title="Arizona Secretary of State">SOS</th>'
    assert header in html
    assert '<td class="num by-source" data-by-source="sos">–</td>' in html
    webapp.record(database_url, race_snapshot("sos", 2, {102: 75}, race_id=1))
    html = " ".join(client.get("/race").get_data(as_text=True).split())
    assert '<td class="num by-source differs" data-by-source="sos">75</td>' in html
    assert '<td class="num votes differs" data-votes>513</td>' in html  # AP's
    assert "75 votes in 1 change ·" in html
