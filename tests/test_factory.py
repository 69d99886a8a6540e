"""Check that create_app builds its config, database and routes as documented."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from flask import Flask
from flask.cli import ScriptInfo

import webapp
from rome.db import Database
from rome.settings import load_settings
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
        "import sys, rome.db, rome.results, rome.tally, rome.settings, rome.normalize,"
        " rome.history, rome.freshness;"
        "assert 'flask' not in sys.modules, 'rome imported flask'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())
