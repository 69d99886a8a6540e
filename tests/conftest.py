"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable) and brokers.

Tests that need the real PostgreSQL or RabbitMQ are skipped on a laptop
without them and fail when CI is set: CI must never pass by skipping. The
groups that take over the machine's own services run only when asked
(ROME_TEST_DESTRUCTIVE=1, which .ci/run sets), so plain `pytest` is safe on
anyone's machine.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from rome.store import db
from rome.store.models import RESULT_TABLES, RejectedRow
from tests.helpers.services import (
    AMQP_URL,
    PG_URL,
    fast_first,
    missing_service,
    refuse_unasked_destruction,
)
from tests.helpers.template_db import prepared_copy

# The suite logs into this machine's RabbitMQ as guest, its default login, which Rome
# accepts only in development (rome/settings.py): so it runs as development, unless the
# caller says otherwise. Tests of production's refusals pass their own environment.
os.environ.setdefault("ROME_ENV", "development")


def pytest_collection_modifyitems(items):
    fast_first(items)


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item):
    refuse_unasked_destruction(item)


def _ensure_pg_database(url: str) -> None:
    base, _, name = db.driver_url(url).rpartition("/")
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        _ensure_pg_database(PG_URL)
    except Exception as exc:  # any failure to reach the server means "not available"
        missing_service("PostgreSQL", exc)
    return PG_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        missing_service("RabbitMQ", exc)
    return AMQP_URL


def clear(database: db.Database) -> None:
    with database.Session.begin() as session:
        for model in (*RESULT_TABLES, RejectedRow):
            session.query(model).delete()


@pytest.fixture(scope="session")
def _pg_database(pg_url):
    # Start each test session from an empty schema, so the tables are exactly
    # what the migrations make today, not what an older run left behind.
    engine = create_engine(db.driver_url(pg_url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    database = db.prepare(pg_url)
    yield database
    database.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A migrated, seeded, empty database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        database = db.prepare(prepared_copy(tmp_path / "rome.sqlite3"))
        yield database
        database.engine.dispose()
    else:
        database = request.getfixturevalue("_pg_database")
        clear(database)
        yield database


@pytest.fixture
def poll_db(database):
    """database, with no poll state or archive index an earlier test left (ROME_SOURCES)."""
    from rome.store.models import ArchiveRow, PollStateRow

    with database.Session.begin() as session:
        session.query(ArchiveRow).delete()
        session.query(PollStateRow).delete()
    return database


@pytest.fixture
def empty_tables():
    """Return the function that empties every result table and rejected."""
    return clear


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def rome_on_rabbitmq(tmp_path, pg_url, amqp_url, empty_tables, unique):
    """Rome's processes on the real RabbitMQ and PostgreSQL: fresh queues, migrated, empty.

    Yields the Processes (to start workers and commands) and the database; stops them all.
    """
    import sys

    from tests.helpers.support import Processes, reset_queues

    reset_queues(amqp_url)
    processes = Processes({"ROME_DATABASE_URL": pg_url, "ROME_BROKER_URL": amqp_url,
                           "ROME_DATA_DIR": str(tmp_path / "data"), "ROME_SEED": unique},
                          tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    database = db.connect(pg_url)
    empty_tables(database)
    yield processes, database
    processes.stop()
    database.engine.dispose()


# The web app on a seeded SQLite database, for the web tests (tests/helpers/webapp.py).
@pytest.fixture
def database_url(tmp_path, monkeypatch):
    from tests.helpers.webapp import clean_env, seed

    clean_env(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    seed(url)
    return url


@pytest.fixture
def app(database_url, tmp_path):
    from tests.helpers.webapp import dispose, make_app

    app = make_app(database_url, tmp_path)
    yield app
    dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def night(database_url):
    """Add webapp.night()'s later reports to the seeded database."""
    from tests.helpers.webapp import night, record

    record(database_url, *night())
