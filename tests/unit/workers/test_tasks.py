"""PipelineTask decides what a failure means: run eagerly, without a broker."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from workers import app, tasks

runs: list[int] = []


@app.task(name="rome.test.flaky", bind=True, base=tasks.PipelineTask)
def flaky(self, outages: int) -> int:
    """Fail as an unreachable database would, outages times, then succeed."""
    runs.append(1)
    if len(runs) <= outages:
        raise OperationalError("SELECT 1", None, ConnectionRefusedError("connection refused"))
    return len(runs)


def test_an_outage_is_waited_out_in_the_task_holding_its_message(monkeypatch):
    # A requeue would count against a quorum queue's delivery limit: a long
    # enough outage would dead-letter good updates. So the task backs off and
    # runs again in place; its message is neither requeued nor republished.
    slept: list[float] = []
    monkeypatch.setattr(tasks.time, "sleep", slept.append)
    runs.clear()
    result = flaky.apply(args=(4,))
    assert result.successful(), result.traceback
    assert result.get() == 5
    assert len(slept) == 4
    assert tasks._outage_streak == 0  # reset by the success


def test_caesar_asks_for_a_publish_of_a_report_that_changes_no_figure(database_url,
                                                                     monkeypatch):
    # A newer report with the same figures changes no race file, but it is a report:
    # when its source was heard from moves, and only a publish writes that to
    # sources.json, by which the static pages judge whether the source is stale.
    from rome.read.results import heard_by_source
    from rome.store import db
    from tests.helpers.builders import race_snapshot

    database = db.connect(database_url)
    monkeypatch.setattr(tasks, "database", lambda: database)
    asked: list[tuple] = []
    monkeypatch.setattr(tasks.publish_races, "apply_async", asked.append)
    with database.Session() as session:
        before = heard_by_source(session)["mc"]
    # MC's seeded figure for candidate 201 of race 2 again, alone, at a newer version.
    result = tasks.record.apply(args=([race_snapshot("mc", 2, {201: 200}).to_wire()],))
    assert result.successful(), result.traceback
    with database.Session() as session:
        after = heard_by_source(session)["mc"]
    database.engine.dispose()
    assert after > before
    [(race_ids, committed_at)] = asked
    assert race_ids == [2] and isinstance(committed_at, float)
