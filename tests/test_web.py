"""Exercise every route of the web app against a temporary SQLite database."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError as BrokerError

import webapp
from rome import db, tally
from rome.updates import Update
from web import create_app
from web.registry import inspect_workers

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
    folders = {
        "data_folder_in": tmp_path / "broker" / "queue",
        "data_folder_out": tmp_path / "broker" / "queue",
        "control_folder": tmp_path / "broker" / "control",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {key: str(folder) for key, folder in folders.items()}


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
    app.extensions["rome_db"].engine.dispose()


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
    assert "1,038 votes in 4 updates" in html
    assert "<time datetime=" in html and " UTC</time>" in html
    assert "2 rejected payloads" in html


def test_race_page_makes_no_outside_requests(client):
    html = client.get("/race").get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert 'src="//' not in html and 'href="//' not in html
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert "url(" not in css.get_data(as_text=True) and "@import" not in css.get_data(as_text=True)


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
    keys = {"raceID", "raceName", "first", "last", "party", "candidateID", "voteCount", "source"}
    assert all(set(row) == keys for row in rows)
    clinton = next(row for row in rows if row["candidateID"] == 102)
    assert clinton == {
        "raceID": 1,
        "raceName": "President of the United States",
        "first": "Hillary",
        "last": "Clinton",
        "party": "DEM",
        "candidateID": 102,
        "voteCount": 513,
        "source": "ap",
    }


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "text/html, application/json"])
def test_race_returns_html_to_browsers(client, accept):
    headers = {"Accept": accept} if accept else {}
    assert client.get("/race", headers=headers).mimetype == "text/html"


# /api/races -----------------------------------------------------------------


def test_api_races(client):
    response = client.get("/api/races")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"races", "rejected"}
    assert body["rejected"] == 2
    assert [race["id"] for race in body["races"]] == [1, 2, 3]
    president = body["races"][0]
    assert president["total_votes"] == 1038
    assert president["leader"] == 102
    assert body["races"][2]["leader"] is None
    clinton = next(c for c in president["candidates"] if c["id"] == 102)
    assert clinton["votes"] == 513 and clinton["by_source"] == {"ap": 513}
    assert clinton["share"] == pytest.approx(513 / 1038, abs=1e-6)
    (source,) = president["sources"]
    assert source["id"] == "ap" and source["votes"] == 1038 and source["updates"] == 4
    assert source["last_update_at"].endswith("+00:00")


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


def test_wipeout_deletes_tallies_and_ledger(client, caplog):
    with caplog.at_level(logging.INFO, logger="rome.web"):
        response = client.post(
            "/race/wipeout", headers=bearer(TOKEN), environ_base={"REMOTE_ADDR": "203.0.113.7"}
        )
    assert response.status_code == 200
    assert response.get_json() == {"tallies": len(VOTES), "ledger": len(VOTES)}
    races = client.get("/api/races").get_json()["races"]
    assert all(race["total_votes"] == 0 and race["leader"] is None for race in races)
    wiped = [r for r in caplog.records if "event=wipeout " in r.getMessage()]
    assert len(wiped) == 1 and "remote_addr=203.0.113.7" in wiped[0].getMessage()


# /registry ------------------------------------------------------------------


def test_registry_lists_every_worker(client):
    response = client.get("/registry")
    assert response.status_code == 200
    assert response.get_json() == {"services": WORKERS}


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
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    assert "Connection refused" in response.get_json()["error"]


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
    def inspect(timeout):
        calls.append(timeout)
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
    assert calls == [0.5]
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


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_ok_with_memory_broker(database_url, broker_folders):
    app = make_app(
        database_url, broker_folders, BROKER_URL="memory://", BROKER_TRANSPORT_OPTIONS={}
    )
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 200


def test_healthz_503_when_database_unreachable(tmp_path, broker_folders):
    url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'rome.sqlite3'}"
    app = make_app(url, broker_folders)
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error" and body["broker"] == "ok"
    assert "unable to open database file" in body["database"]


def test_healthz_503_when_broker_folder_missing(database_url, broker_folders, tmp_path):
    options = dict(broker_folders, control_folder=str(tmp_path / "gone"))
    app = make_app(database_url, broker_folders, BROKER_TRANSPORT_OPTIONS=options)
    response = app.test_client().get("/healthz")
    app.extensions["rome_db"].engine.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["broker"] == f"broker folder {tmp_path / 'gone'} does not exist"


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
    assert response.get_json()["broker"] != "ok"


def test_healthz_200_when_one_node_of_a_cluster_answers(database_url, broker_folders,
                                                        amqp_url):
    dead = "amqp://guest:guest@127.0.0.1:1//;amqp://guest:guest@127.0.0.1:2//"
    app = make_app(database_url, broker_folders, BROKER_URL=f"{dead};{amqp_url}",
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


def test_race_page_splits_votes_by_source_when_a_race_has_several(database_url, broker_folders):
    from rome.models import SourceRow

    database = db.connect(database_url)
    with database.Session.begin() as session:
        session.add(SourceRow(id="pool", name="Press Pool", race_id=2))
        session.flush()
        tally.record_updates(session, [Update("pool", 1, 0, 2, 201, 75, time.time())])
    database.engine.dispose()
    app = make_app(database_url, broker_folders)
    html = app.test_client().get("/race").get_data(as_text=True)
    app.extensions["rome_db"].engine.dispose()
    assert '<th scope="col" class="num by-source">POOL</th>' in html
    assert '<td class="num by-source">75</td>' in html
    assert "Press Pool" in html and "75 votes in 1 update ·" in " ".join(html.split())
