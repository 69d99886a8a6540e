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
