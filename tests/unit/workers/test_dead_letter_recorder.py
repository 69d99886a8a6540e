"""The dead-letter recorder acks a dead letter only once its row is committed."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from rome.store import dead_letters as store
from rome.store.models import RejectedRow
from workers import dead_letters


@dataclass
class FakeMessage:
    headers: dict
    body: bytes = b'[["ap"], {}, {}]'
    acked: list[bool] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append(True)


def test_a_dead_letter_is_acked_after_its_row_and_held_through_an_outage(database, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(dead_letters.time, "sleep", slept.append)
    calls: list[str] = []

    def down_twice(session, key, *args, **kwargs):
        calls.append(key)
        if len(calls) <= 2:
            raise OperationalError("INSERT", None, ConnectionRefusedError("refused"))
        message_seen_unacked.append(not message.acked)
        return store.record_dead_letter(session, key, *args, **kwargs)

    message_seen_unacked: list[bool] = []
    monkeypatch.setattr(dead_letters, "record_dead_letter", down_twice)
    message = FakeMessage({"id": "t-1", "task": "rome.caesar.record",
                           "x-first-death-reason": "delivery_limit",
                           "x-first-death-queue": "caesar.quorum"})
    recorder = dead_letters.DeadLetterRecorder(None, None, database)
    recorder.on_message(message)
    assert calls == ["t-1"] * 3 and slept == [1.0, 2.0]
    assert message_seen_unacked == [True] and message.acked == [True]
    with database.Session() as session:
        row = session.scalar(select(RejectedRow).where(RejectedRow.task_id == "t-1"))
    assert row.reason == ("dead-lettered by RabbitMQ: delivery_limit in caesar.quorum; "
                          "task 'rome.caesar.record'")


def test_a_stopping_recorder_leaves_the_dead_letter_unacked(database, monkeypatch):
    recorder = dead_letters.DeadLetterRecorder(None, None, database)

    def down(*_args, **_kwargs):
        recorder.should_stop = True
        raise OperationalError("INSERT", None, ConnectionRefusedError("refused"))

    monkeypatch.setattr(dead_letters.time, "sleep", lambda _s: None)
    monkeypatch.setattr(dead_letters, "record_dead_letter", down)
    message = FakeMessage({"id": "t-2"})
    recorder.on_message(message)
    assert message.acked == []  # redelivered once the recorder's connection closes
