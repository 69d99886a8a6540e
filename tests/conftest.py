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

from rome import db
from rome.models import RESULT_TABLES, RejectedRow

PG_URL = os.environ.get("ROME_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/rome_test")
AMQP_URL = os.environ.get("ROME_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = bool(os.environ.get("CI"))
# Marker groups that take the machine's own services from whoever else uses them.
# The cluster tests are not among them: their three RabbitMQ nodes have ports,
# a cookie and folders of their own, and leave the machine's node alone.
DESTRUCTIVE = "ROME_TEST_DESTRUCTIVE"
DESTRUCTIVE_GROUPS = {
    "faults": "stop and restart this machine's PostgreSQL and RabbitMQ",
    "compose": "run containers on this machine's ports 8083, 5555 and 15672",
}


def pytest_collection_modifyitems(items):
    # Fast tests first, then the ones that start processes, the fault tests last: a
    # mistake shows in the first seconds, not after minutes of integration tests.
    def weight(item):
        return 2 if item.get_closest_marker("faults") else bool(item.get_closest_marker("slow"))

    items.sort(key=weight)


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item):
    """Run a destructive group's test only when DESTRUCTIVE=1 asks for it."""
    if os.environ.get(DESTRUCTIVE) == "1":
        return
    for marker, what in DESTRUCTIVE_GROUPS.items():
        if item.get_closest_marker(marker):
            message = f"the {marker} tests {what}: set {DESTRUCTIVE}=1 to run them"
            if IN_CI:  # CI runs every group: .ci/run sets the variable
                pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
            pytest.skip(message)


def missing_service(what: str, error: Exception):
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


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
        database = db.prepare(f"sqlite:///{tmp_path / 'rome.sqlite3'}")
        yield database
        database.engine.dispose()
    else:
        database = request.getfixturevalue("_pg_database")
        clear(database)
        yield database


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

    from support import Processes, reset_queues

    reset_queues(amqp_url)
    processes = Processes({"ROME_DATABASE_URL": pg_url, "ROME_BROKER_URL": amqp_url,
                           "ROME_DATA_DIR": str(tmp_path / "data"), "ROME_SEED": unique},
                          tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome.cli", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    database = db.connect(pg_url)
    empty_tables(database)
    yield processes, database
    processes.stop()
    database.engine.dispose()


# The web app on a seeded SQLite database, for the web tests (tests/webapp.py).
@pytest.fixture
def database_url(tmp_path, monkeypatch):
    from webapp import clean_env, seed

    clean_env(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    seed(url)
    return url


@pytest.fixture
def app(database_url, tmp_path):
    from webapp import dispose, make_app

    app = make_app(database_url, tmp_path)
    yield app
    dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def night(database_url):
    """Add webapp.night()'s later reports to the seeded database."""
    from webapp import night, record

    record(database_url, *night())
