"""The whole pipeline with a real worker and a real beat: embedded, then RabbitMQ + PostgreSQL."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import select

from rome import db
from rome.models import LedgerRow, TallyRow
from rome.normalize import normalize
from rome.settings import load_settings
from rome.sources import emit_tick
from support import Processes, reset_queues, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
def pipeline(request, tmp_path, unique, empty_tables):
    env = {
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_SOURCE_INTERVAL": "0.25",
        "ROME_UPDATE_CHANCE": "1",
        "ROME_SEED": unique,
    }
    if request.param != "embedded":
        env["ROME_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["ROME_BROKER_URL"] = request.getfixturevalue("amqp_url")
        reset_queues(env["ROME_BROKER_URL"])
    processes = Processes(env, tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome.cli", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    settings = load_settings(env)
    database = db.connect(settings.database_url)
    empty_tables(database)
    yield processes, settings, database
    processes.stop()
    database.engine.dispose()


def source_tallies(database) -> dict[str, tuple[int, int]]:
    with database.Session() as session:
        out: dict[str, tuple[int, int]] = {}
        for t in session.scalars(select(TallyRow)):
            votes, updates = out.get(t.source_id, (0, 0))
            out[t.source_id] = (votes + t.votes, updates + t.updates)
        return out


def test_updates_flow_from_every_source_and_count_once(pipeline):
    processes, settings, database = pipeline
    processes.worker()
    processes.beat()

    def every_source_reported():
        tallies = source_tallies(database)
        return tallies if len(tallies) == 3 and min(u for _, u in tallies.values()) >= 3 else None

    first = wait_for(every_source_reported, 60, what="all three sources to report")
    grown = wait_for(
        lambda: (t := source_tallies(database)) and all(t[s][1] > first[s][1] for s in t) and t,
        30, what="tallies to grow",
    )
    assert all(grown[s][0] >= first[s][0] for s in grown)  # never backwards

    # Quiesce the sources, then publish one feed body twice: it must count once.
    processes.stop("beat")
    settle = {}

    def settled():
        now = source_tallies(database)
        done = settle.get("last") == now
        settle["last"] = now
        return done

    wait_for(settled, 30, interval=1.5, what="the pipeline to drain")
    before = source_tallies(database)
    # rome inject publishes through the production path; --duplicate-rate 1
    # sends the one message twice.
    expect = processes.log_dir / "dup.json"
    injected = processes.run([sys.executable, "-m", "rome.cli", "inject", "--updates", "1",
                              "--duplicate-rate", "1", "--first-tick", "7",
                              "--expect", str(expect)])
    assert injected.returncode == 0, injected.stderr
    assert "published 2 messages" in injected.stdout
    [tally] = json.loads(expect.read_text())["tallies"]
    update_id = f"ap:7:0:{tally['candidate_id']}"
    duplicate_seen = f"applied=0 duplicates=1 update_ids={update_id}"
    wait_for(lambda: duplicate_seen in processes.log("worker"), 30,
             what="the second copy to reach caesar")
    after = source_tallies(database)
    assert after["ap"][0] - before["ap"][0] == tally["votes"]
    assert after["ap"][1] - before["ap"][1] == 1
    with database.Session() as session:
        assert session.get(LedgerRow, update_id).votes == tally["votes"]

    processes.stop()
    audit = processes.run([sys.executable, "-m", "rome.cli", "audit"])
    assert audit.returncode == 0, audit.stderr
    assert "audit ok" in audit.stdout


def test_audit_exits_1_on_a_tampered_tally(pipeline):
    processes, settings, database = pipeline
    from rome.tally import record_updates

    body, _ = emit_tick("mc", 3, seed="audit", chance=1.0, units=2)
    with database.Session.begin() as session:
        record_updates(session, normalize("mc", body))
    with database.Session.begin() as session:
        session.scalars(select(TallyRow)).first().votes += 1
    audit = processes.run([sys.executable, "-m", "rome.cli", "audit"])
    assert audit.returncode == 1
    assert "differ" in audit.stderr and "source=mc" in audit.stderr
