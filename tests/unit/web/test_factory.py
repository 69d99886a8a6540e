"""Check that create_app builds its config, database and routes as documented."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest
from flask import Flask
from flask.cli import ScriptInfo

from rome.settings import load_settings
from rome.store.db import Database
from tests.helpers import webapp
from web import create_app


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    webapp.clean_env(monkeypatch, tmp_path)


def dispose(app: Flask) -> None:
    app.extensions["rome_db"].engine.dispose()


def test_defaults_come_from_rome_settings(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'from-env.sqlite3'}"
    monkeypatch.setenv("ROME_DATABASE_URL", url)
    monkeypatch.setenv("ROME_ADMIN_TOKEN", "env-admin-token")
    app = create_app()
    dispose(app)
    assert app.config["DATABASE_URL"] == url
    assert app.config["ADMIN_TOKEN"] == "env-admin-token"
    assert app.config["BROKER_URL"] == load_settings().broker_url
    assert app.config["BROKER_TRANSPORT_OPTIONS"]["control_folder"] == str(
        tmp_path / "data" / "broker" / "control"
    )
    assert app.config["REGISTRY"] is None
    assert not app.testing


def test_without_admin_token_the_setting_is_none():
    app = create_app()
    dispose(app)
    assert app.config["ADMIN_TOKEN"] is None
    assert app.config["SECRET_KEY"] is None  # no form to protect, so no key


def test_the_secret_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROME_ADMIN_TOKEN", "env-admin-token")
    monkeypatch.setenv("ROME_SECRET_KEY", "an-environment-secret")
    app = create_app()
    dispose(app)
    assert app.config["SECRET_KEY"] == "an-environment-secret"


def test_staleness_follows_the_source_interval_and_chance(monkeypatch):
    monkeypatch.setenv("ROME_SOURCE_INTERVAL", "0.5")
    monkeypatch.setenv("ROME_UPDATE_CHANCE", "1")
    app = create_app()
    dispose(app)
    assert app.config["SOURCE_INTERVAL"] == 0.5
    assert app.config["STALE_AFTER"] == 2.5
    monkeypatch.setenv("ROME_UPDATE_CHANCE", "0.3")  # the default: silence is common
    app = create_app()
    dispose(app)
    assert app.config["STALE_AFTER"] == 10.0


def test_test_config_overrides_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "BROKER_URL": "memory://"})
    dispose(app)
    assert app.testing
    assert app.config["DATABASE_URL"] == url
    assert app.config["BROKER_URL"] == "memory://"


def test_each_app_has_its_own_database(tmp_path):
    first = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite3'}"})
    second = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite3'}"})
    dispose(first)
    dispose(second)
    assert isinstance(first.extensions["rome_db"], Database)
    assert first.extensions["rome_db"] is not second.extensions["rome_db"]
    assert str(first.extensions["rome_db"].engine.url).endswith("a.sqlite3")


def test_every_route_is_registered():
    app = create_app()
    dispose(app)
    rules = {rule.rule: rule.methods for rule in app.url_map.iter_rules()}
    for path in (
        "/race",
        "/api/races",
        "/api/races/<int:race_id>",
        "/api/rejected",
        "/api/races/<int:race_id>/history",
        "/api/openapi.json",
        "/race/<int:race_id>",
        "/race/<int:race_id>/chart.svg",
        "/metrics",
        "/registry",
        "/healthz",
        "/readyz",
        "/livez",
    ):
        assert "GET" in rules[path]
    assert rules["/race/wipeout"] & {"GET", "POST"} == {"POST"}


def test_bad_settings_stop_the_factory(monkeypatch):
    from rome.settings import SettingsError

    monkeypatch.setenv("ROME_ADMIN_TOKEN", "short")
    with pytest.raises(SettingsError):
        create_app()


def test_flask_cli_finds_the_factory():
    # What `flask --app web run` does to load the app.
    app = ScriptInfo(app_import_path="web").load_app()
    dispose(app)
    assert isinstance(app, Flask) and app.name == "web"


def test_rome_does_not_import_flask():
    code = (
        "import sys, rome.store.db, rome.read.results, rome.read.results_cache, rome.store.tally,"
        " rome.settings, rome.feeds.formats, rome.feeds.snapshot, rome.store.reference,"
        " rome.read.history, rome.read.freshness;"
        "assert 'flask' not in sys.modules, 'rome imported flask'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())


# What every answer carries, and whom the app answers to (issue 14, point 9).


def test_an_unknown_host_gets_400_not_a_redirect_to_itself(client):
    evil = client.get("/static//style.css", headers={"Host": "evil.example"})
    assert evil.status_code == 400
    assert "Location" not in evil.headers
    assert client.get("/api/races", headers={"Host": "evil.example"}).status_code == 400


def sample_path(rule: str) -> str:
    """Fill a rule's variables (<int:race_id>, <path:filename>) with values that match them."""
    return re.sub(r"<(?:int:)?race_id>", "1", rule).replace("<path:filename>", "style.css")


def test_no_path_redirects_to_the_host_it_was_asked_for_even_when_any_host_is_allowed(
    database_url, tmp_path
):
    # Werkzeug merged the slashes of /static//x with a 308 to an absolute URL
    # built from the Host header: with every host allowed (`rome demo --host
    # 0.0.0.0` sets ROME_ALLOWED_HOSTS=*), an open redirect to any site.
    app = webapp.make_app(database_url, tmp_path, TRUSTED_HOSTS=None)
    client = app.test_client()
    try:
        paths = [sample_path(rule.rule) for rule in app.url_map.iter_rules()]
        assert "/static/style.css" in paths and "/api/races/1/history" in paths
        answers = {}
        for path in paths:
            first, _, rest = path[1:].partition("/")
            for variant in (f"/{first}//{rest}", f"/{first}/{rest}//", f"{path}/",
                            path.rstrip("/"), f"/{first}//", f"/{first}/./{rest}"):
                for method in ("GET", "POST"):
                    answer = client.open(variant, method=method,
                                         headers={"Host": "evil.example"})
                    answers[method, variant] = (answer.status_code,
                                                answer.headers.get("Location"))
    finally:
        webapp.dispose(app)
    redirected = {asked: answer for asked, answer in answers.items()
                  if answer[1] and "evil.example" in answer[1]}
    assert not redirected
    assert answers["GET", "/static//style.css"] == (404, None)


def test_allowed_hosts_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ROME_ALLOWED_HOSTS", "results.example.org,.example.net")
    app = create_app({"TESTING": True, "REGISTRY": lambda: []})
    client = app.test_client()
    try:
        assert client.get("/livez", headers={"Host": "results.example.org"}).status_code == 200
        assert client.get("/livez", headers={"Host": "www.example.net:443"}).status_code == 200
        assert client.get("/livez", headers={"Host": "localhost"}).status_code == 400
    finally:
        dispose(app)
    monkeypatch.setenv("ROME_ALLOWED_HOSTS", "*")
    app = create_app({"TESTING": True})
    dispose(app)
    assert app.config["TRUSTED_HOSTS"] is None


@pytest.mark.parametrize("path", ["/api/races", "/healthz", "/race", "/metrics", "/nowhere"])
def test_every_answer_says_nosniff_and_keeps_its_referrer_home(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def session_cookie(response) -> str:
    [cookie] = [v for k, v in response.headers.items()
                if k == "Set-Cookie" and v.startswith("rome_session=")]
    return cookie


def test_the_session_cookie_is_secure_over_https(app):
    assert "Secure" not in session_cookie(app.test_client().get("/race"))
    over_https = app.test_client().get("/race", base_url="https://localhost")
    assert "; Secure" in session_cookie(over_https)


def test_forwarded_headers_count_only_behind_a_trusted_proxy(database_url, tmp_path, caplog):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    direct = webapp.make_app(database_url, tmp_path)
    proxied = webapp.make_app(database_url, tmp_path, PROXY_HOPS=1)
    try:
        # Without a proxy the headers are the client's own claims: ignored.
        response = direct.test_client().get("/race", headers=forwarded)
        assert "Secure" not in session_cookie(response)
        # Behind one proxy, they say how the browser reached the proxy, and from where.
        response = proxied.test_client().get("/race", headers=forwarded)
        assert "; Secure" in session_cookie(response)
        with caplog.at_level(logging.INFO, logger="rome.web"):
            for app in (direct, proxied):
                app.test_client().post("/race/wipeout", headers={
                    **forwarded, "Authorization": "Bearer a-wrong-token"})
        refused = [r.getMessage() for r in caplog.records if "wipeout_refused" in r.getMessage()]
        assert "remote_addr=127.0.0.1 " in refused[0]
        assert "remote_addr=198.51.100.7 " in refused[1]
    finally:
        webapp.dispose(direct)
        webapp.dispose(proxied)


def test_a_page_for_an_unknown_host_is_a_plain_400_not_a_server_error(client):
    # The styled error page links to /race: building it for a stranger's Host failed.
    page = client.get("/race", headers={"Host": "evil.example", "Accept": "text/html"})
    assert page.status_code == 400 and b"does not answer to that host" in page.data
    assert b"evil.example" not in page.data
