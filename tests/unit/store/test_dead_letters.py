"""Each dead letter is one row in `rejected`, with the worker's reason when it has one."""

from __future__ import annotations

from sqlalchemy import select

from rome.store.dead_letters import dead_letter_key, death_reason, record_dead_letter
from rome.store.models import RejectedRow


def rows(database) -> list[tuple[str | None, str]]:
    with database.Session() as session:
        return [(r.task_id, r.reason) for r in session.scalars(
            select(RejectedRow).where(RejectedRow.task_id.is_not(None)).order_by(RejectedRow.id))]


def record(database, key: str, reason: str, *, overwrite: bool) -> None:
    with database.Session.begin() as session:
        record_dead_letter(session, key, None, b"body", reason, overwrite=overwrite)


def test_the_worker_and_the_recorder_make_one_row_with_the_workers_reason(database):
    # Whichever commits first: the recorder's reason never replaces the worker's.
    record(database, "t1", "by RabbitMQ: rejected", overwrite=False)
    record(database, "t1", "caesar failed 3 times", overwrite=True)
    record(database, "t2", "caesar failed 3 times", overwrite=True)
    record(database, "t2", "by RabbitMQ: rejected", overwrite=False)
    record(database, "t3", "by RabbitMQ: delivery_limit", overwrite=False)
    record(database, "t3", "by RabbitMQ: delivery_limit", overwrite=False)
    assert rows(database) == [("t1", "caesar failed 3 times"), ("t2", "caesar failed 3 times"),
                              ("t3", "by RabbitMQ: delivery_limit")]


def test_a_message_without_a_task_id_is_named_by_its_body():
    assert dead_letter_key("abc", b"x") == "abc"
    assert dead_letter_key(None, b"\xff\xfe") == dead_letter_key("", b"\xff\xfe")
    assert dead_letter_key(None, b"a") != dead_letter_key(None, b"b")
    assert dead_letter_key(None, b"a").startswith("sha256:")


def test_the_reason_comes_from_the_x_death_headers():
    assert death_reason({"x-first-death-reason": "delivery_limit",
                         "x-first-death-queue": "caesar.quorum"}) == (
        "delivery_limit in caesar.quorum")
    assert death_reason({"x-death": [{"reason": "expired", "queue": "q", "count": 1}]}) == (
        "expired in q")
    assert death_reason(None) == "unknown"
