"""The worker's consumer: what it does with a message before Celery's task handler sees it."""

from __future__ import annotations

import pytest
from celery.worker.consumer import Consumer

from workers import app
from workers.consumer import DeadLetteringConsumer


class Message:
    """What the handler reads of a kombu message, and a record of any ack or reject."""

    def __init__(self, content_type: str):
        self.content_type = content_type
        self.headers = {"id": "t-1", "task": "rome.caesar.record"}
        self.delivery_info = {"consumer_tag": "ctag"}
        self.channel = None
        self.settled: list[str] = []

    def reject_log_error(self, logger, errors, requeue=False):
        self.settled.append("reject")


@pytest.fixture
def received(monkeypatch):
    """The consumer's on_task_received over a Celery handler that records what it is given."""
    handed: list[Message] = []
    monkeypatch.setattr(Consumer, "create_task_handler",
                        lambda self, *a, **k: handed.append)
    consumer = object.__new__(DeadLetteringConsumer)
    consumer.app = app
    consumer.connection_errors = ()
    return consumer.create_task_handler(), handed


def test_an_accepted_content_type_is_handed_to_celery(received):
    on_task_received, handed = received
    message = Message(app.conf.accept_content[0])
    on_task_received(message)
    assert handed == [message] and message.settled == []


def test_a_content_type_the_app_does_not_accept_is_rejected_and_recorded(received, monkeypatch):
    # kombu would hand "application/data" on undecoded, and Celery's strategy would stop
    # the worker's main process on it.
    on_task_received, handed = received
    recorded = []
    monkeypatch.setattr("workers.consumer.signals.task_rejected.send",
                        lambda **kw: recorded.append(kw["exc"]))
    message = Message("application/data")
    on_task_received(message)
    assert handed == [] and message.settled == ["reject"]
    assert "'application/data' is not accepted" in str(recorded[0])
